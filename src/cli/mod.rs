//! Sub-commands of the `facegate` binary that need more than a few lines.

pub mod doctor;
pub mod eval;
pub mod events;
pub mod gallery;
pub mod key;
pub mod open_set;
pub mod photos;
pub mod run;
pub mod serve;

/// Open the application ([`facegate::app::App`]), a gallery held by another process explained.
pub fn open_app(config: &facegate::config::Config) -> anyhow::Result<facegate::app::App> {
    match facegate::app::App::open(config) {
        Ok(app) => Ok(app),
        Err(facegate::app::AppError::Gallery { path, source }) => {
            Err(gallery::explain_open_error(source)
                .context(format!("opening the gallery at {}", path.display())))
        }
        Err(e) => Err(e.into()),
    }
}
