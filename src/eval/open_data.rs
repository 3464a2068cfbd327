//! The open-set protocol's data: a folder of `<person>/<photos>` read into identities, and the
//! errata file that merges or leaves out mislabelled ones (`docs/lfw-dev-errata.txt`).

use std::path::{Path, PathBuf};

use super::EvalError;

/// One person's photos, in file-name order.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub photos: Vec<PathBuf>,
}

const IMAGE_EXT: [&str; 7] = ["jpg", "jpeg", "png", "pgm", "bmp", "webp", "ppm"];

/// Read `DIR/<person>/<photos>`, sorted.
pub fn read_identities(dir: &Path) -> Result<Vec<Identity>, EvalError> {
    let read = |p: &Path| {
        std::fs::read_dir(p).map_err(|source| EvalError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let mut out = Vec::new();
    for entry in read(dir)? {
        let entry = entry.map_err(|source| EvalError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let mut photos: Vec<PathBuf> = read(&path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXT.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        photos.sort();
        if !photos.is_empty() {
            out.push(Identity {
                name: entry.file_name().to_string_lossy().into_owned(),
                photos,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Apply an errata file to the identities: `same A B` (B is the same person as A: B's photos
/// join A's), `drop PERSON/FILE` (a photo whose label is wrong: left out). `#` starts a comment.
pub fn apply_errata(ids: &mut Vec<Identity>, text: &str, path: &Path) -> Result<usize, EvalError> {
    let err = |line: usize, reason: String| EvalError::Format {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut applied = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            [] => {}
            ["same", a, b] => {
                let Some(bi) = ids.iter().position(|x| x.name == *b) else {
                    continue;
                };
                let moved = ids.remove(bi);
                match ids.iter_mut().find(|x| x.name == *a) {
                    Some(x) => {
                        x.photos.extend(moved.photos);
                        x.photos.sort();
                        applied += 1;
                    }
                    None => ids.push(moved),
                }
            }
            ["drop", photo] => {
                for x in ids.iter_mut() {
                    let before = x.photos.len();
                    x.photos.retain(|p| !p.ends_with(photo));
                    applied += before - x.photos.len();
                }
                ids.retain(|x| !x.photos.is_empty());
            }
            _ => {
                return Err(err(
                    i + 1,
                    format!("expected `same A B` or `drop PERSON/FILE`, got {line:?}"),
                ));
            }
        }
    }
    ids.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(applied)
}
