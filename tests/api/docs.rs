//! The documentation's links: every relative link in `README.md` and `docs/` names a file that
//! exists, every `#anchor` in the README names one of its headings, and `Rocket.toml` refers to
//! no missing file.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files checked: the README and everything under `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut folders = vec![root().join("docs")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// The targets of the inline Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        targets.push(after[..end].trim().to_string());
        rest = &after[end..];
    }
    targets
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation other than `-` and
/// `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn headings(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.push(anchor(
                line.trim_start_matches('#').replace('`', "").as_str(),
            ));
        }
    }
    found
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_exists() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let own = headings(&text);
        let dir = file.parent().unwrap();
        for target in link_targets(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            if path.is_empty() {
                if let Some(fragment) = fragment
                    && !own.iter().any(|h| h == fragment)
                {
                    broken.push(format!("{}: #{fragment} (no such heading)", file.display()));
                }
                continue;
            }
            if !dir.join(path).exists() {
                broken.push(format!("{}: {path} (no such file)", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn rocket_toml_refers_to_no_missing_file() {
    let text = std::fs::read_to_string(root().join("Rocket.toml")).unwrap();
    for word in text.split_whitespace() {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '/' && c != '.');
        if word.starts_with("docs/") {
            assert!(
                Path::new(&root()).join(word).exists(),
                "Rocket.toml names {word}, which does not exist"
            );
        }
    }
}

#[test]
fn the_link_checker_finds_what_it_should() {
    assert_eq!(
        link_targets("see [a](docs/x.md) and [b](#top) or [c](https://e.org)"),
        ["docs/x.md", "#top", "https://e.org"]
    );
    assert_eq!(anchor("Scale-out (PostgreSQL)"), "scale-out-postgresql");
    assert_eq!(
        anchor("`stamp-verify` for resource servers"),
        "stamp-verify-for-resource-servers"
    );
    assert_eq!(headings("# A b\n```\n# not\n```\n## C: d"), ["a-b", "c-d"]);
}
