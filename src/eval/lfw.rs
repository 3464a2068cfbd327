//! LFW pair files: `N` then N same-person and N different-person lines (View 1), or
//! `FOLDS N` then, per fold, N same and N different lines (View 2). A same-person line is
//! `name i j`, a different-person line `name1 i name2 j`; image `i` of `name` is
//! `name/name_000i.jpg`.

use std::path::{Path, PathBuf};

use super::EvalError;

#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Image paths relative to the LFW root.
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
    pub fold: usize,
    /// Line number in the pairs file (1-based).
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct PairsFile {
    pub path: PathBuf,
    pub folds: usize,
    pub pairs: Vec<Pair>,
}

fn image(name: &str, index: &str) -> Result<PathBuf, String> {
    let i: u32 = index
        .parse()
        .map_err(|_| format!("image number {index:?} is not a number"))?;
    Ok(PathBuf::from(name).join(format!("{name}_{i:04}.jpg")))
}

/// Parse a pairs file's text.
pub fn parse_pairs(text: &str, path: &Path) -> Result<PairsFile, EvalError> {
    let err = |line: usize, reason: String| EvalError::Format {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| err(1, "empty file".into()))?;
    let nums: Vec<usize> = header
        .split_whitespace()
        .map(|t| {
            t.parse()
                .map_err(|_| err(1, format!("header {header:?} is not `N` or `FOLDS N`")))
        })
        .collect::<Result<_, _>>()?;
    let (folds, per_fold) = match nums.as_slice() {
        [n] => (1, *n),
        [f, n] => (*f, *n),
        _ => return Err(err(1, format!("header {header:?} is not `N` or `FOLDS N`"))),
    };
    let mut pairs = Vec::with_capacity(folds * per_fold * 2);
    for (idx, line) in lines {
        let n = pairs.len();
        let fold = n / (2 * per_fold).max(1);
        let want_same = n % (2 * per_fold).max(1) < per_fold;
        let t: Vec<&str> = line.split_whitespace().collect();
        let pair = match t.as_slice() {
            [name, i, j] => Pair {
                a: image(name, i).map_err(|r| err(idx + 1, r))?,
                b: image(name, j).map_err(|r| err(idx + 1, r))?,
                same: true,
                fold,
                line: idx + 1,
            },
            [n1, i, n2, j] => Pair {
                a: image(n1, i).map_err(|r| err(idx + 1, r))?,
                b: image(n2, j).map_err(|r| err(idx + 1, r))?,
                same: false,
                fold,
                line: idx + 1,
            },
            _ => {
                return Err(err(
                    idx + 1,
                    format!("expected `name i j` or `name1 i name2 j`, got {line:?}"),
                ));
            }
        };
        if pair.same != want_same {
            return Err(err(
                idx + 1,
                format!(
                    "expected a {} pair here (each fold lists {per_fold} same-person pairs, then {per_fold} different)",
                    if want_same {
                        "same-person"
                    } else {
                        "different-person"
                    }
                ),
            ));
        }
        pairs.push(pair);
    }
    if pairs.len() != folds * per_fold * 2 {
        return Err(err(
            0,
            format!(
                "header promises {} pairs, the file has {}",
                folds * per_fold * 2,
                pairs.len()
            ),
        ));
    }
    Ok(PairsFile {
        path: path.to_owned(),
        folds,
        pairs,
    })
}

pub fn read_pairs(path: &Path) -> Result<PairsFile, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_pairs(&text, path)
}

/// For `pairsDevTest.txt`, the View 1 training file beside it, if present.
pub fn sibling_train_file(test: &Path) -> Option<PathBuf> {
    let name = test.file_name()?.to_str()?;
    if !name.eq_ignore_ascii_case("pairsDevTest.txt") {
        return None;
    }
    let train = test.with_file_name("pairsDevTrain.txt");
    train.is_file().then_some(train)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view1_and_view2_parse() {
        let v1 = "2\nA 1 2\nB 3 4\nA 1 C 2\nB 1 D 1\n";
        let p = parse_pairs(v1, Path::new("p.txt")).unwrap();
        assert_eq!(p.folds, 1);
        assert_eq!(p.pairs.len(), 4);
        assert_eq!(p.pairs[0].a, PathBuf::from("A/A_0001.jpg"));
        assert!(p.pairs[1].same && !p.pairs[2].same);
        let v2 = "2 1\nA 1 2\nA 1 C 2\nB 3 4\nB 1 D 1\n";
        let p = parse_pairs(v2, Path::new("p.txt")).unwrap();
        assert_eq!(p.folds, 2);
        assert_eq!(p.pairs[2].fold, 1);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = parse_pairs("2\nA 1 2\nA x 3\n", Path::new("p.txt")).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = parse_pairs("1\nA 1 C 2\nA 1 2\n", Path::new("p.txt")).unwrap_err();
        assert!(e.to_string().contains("same-person"), "{e}");
        let e = parse_pairs("3\nA 1 2\nB 1 2\nC 1 2\nA 1 C 2\n", Path::new("p.txt")).unwrap_err();
        assert!(e.to_string().contains("promises 6"), "{e}");
    }
}
