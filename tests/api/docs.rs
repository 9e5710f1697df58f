//! The documentation's links and examples: every relative link in `README.md`, `ARCHITECTURE.md`,
//! `verify/README.md` and `docs/` names a file that exists, and every `#anchor` a heading of the
//! file it points into; every file path they name in backticks exists; `Rocket.toml` and the
//! code's comments name no missing file or README anchor; and every shell variable an example
//! uses is set in that example or an earlier one (the guides in `docs/` continue the README's
//! walkthrough, which sets `$PASSWORD` and `$TOKEN`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.md` file under `folder`, recursively.
fn markdown_under(folder: PathBuf) -> Vec<PathBuf> {
    files_under(folder, "md")
}

fn files_under(folder: PathBuf, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![folder];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The Markdown files checked: the README, ARCHITECTURE.md, the verifier's README and
/// everything under `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("README.md"),
        root().join("ARCHITECTURE.md"),
        root().join("verify/README.md"),
    ];
    files.extend(markdown_under(root().join("docs")));
    files
}

/// `text` without its fenced code blocks (what a reader sees as prose, tables and lists).
fn prose(text: &str) -> String {
    let mut in_code = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The fenced `sh` blocks of `text`, in order.
fn shell_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.starts_with("```")) {
            (None, true) => {
                if matches!(line.trim_start_matches('`').trim(), "sh" | "bash" | "shell") {
                    current = Some(String::new());
                } else {
                    // Another language: skip to its closing fence.
                    current = Some("\u{0}".to_string());
                }
            }
            (Some(block), true) => {
                if !block.starts_with('\u{0}') {
                    blocks.push(std::mem::take(block));
                }
                current = None;
            }
            (Some(block), false) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, false) => {}
        }
    }
    blocks
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
    prose(text)
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#').replace('`', "").as_str()))
        .collect()
}

/// Does `word` look like a path in the repository (`tests/api/docs.rs`, `docs/deploy/`)?
fn looks_like_a_path(word: &str) -> bool {
    const EXTENSIONS: [&str; 13] = [
        ".rs", ".md", ".toml", ".sh", ".mjs", ".py", ".yaml", ".conf", ".service", ".json", ".sql",
        ".txt", "/",
    ];
    word.contains('/')
        && !word.starts_with('/')
        && !word.contains("://")
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        && EXTENSIONS.iter().any(|e| word.ends_with(e))
}

/// Files that exist only once something ran: build output and a key store's manifest.
fn generated(path: &str) -> bool {
    path.starts_with("target/") || path == "keys/manifest.json"
}

/// Whether `path`, named in `file`, exists: relative to the repository, to `file`'s folder, or
/// (module paths such as `keys/signer.rs`) to the issuer's `src/`.
fn path_exists(file: &Path, path: &str) -> bool {
    generated(path)
        || root().join(path).exists()
        || file.parent().unwrap().join(path).exists()
        || root().join("src").join(path).exists()
}

/// The broken links of one Markdown file: a missing file, or an anchor that is no heading of
/// the file it points into.
fn broken_links(file: &Path, text: &str) -> Vec<String> {
    let mut broken = Vec::new();
    let dir = file.parent().unwrap();
    for target in link_targets(&prose(text)) {
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
        let linked = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !linked.exists() {
            broken.push(format!("{}: {path} (no such file)", file.display()));
            continue;
        }
        if let Some(fragment) = fragment
            && linked.extension().is_some_and(|e| e == "md")
        {
            let text = std::fs::read_to_string(&linked).unwrap();
            if !headings(&text).iter().any(|h| h == fragment) {
                broken.push(format!(
                    "{}: {target} (no such heading in {})",
                    file.display(),
                    linked.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_exists() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        broken.extend(broken_links(&file, &text));
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_file_path_the_docs_name_exists() {
    let mut missing = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in prose(&text).lines() {
            for span in line.split('`').skip(1).step_by(2) {
                if looks_like_a_path(span) && !path_exists(&file, span) {
                    missing.push(format!("{}: `{span}`", file.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named but missing:\n{}",
        missing.join("\n")
    );
}

/// `docs/….md` and `README.md#anchor` references in `text` (comments of code and settings).
fn doc_references(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '`' | '"' | ',' | ';'))
        .map(|word| word.trim_end_matches(['.', ':']))
        .filter(|word| {
            let path = word.split('#').next().unwrap_or_default();
            (path.starts_with("docs/") && looks_like_a_path(path)) || word.starts_with("README.md#")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn rocket_toml_and_the_code_name_no_missing_file_or_anchor() {
    let mut sources = vec![root().join("Rocket.toml")];
    for folder in ["src", "tests", "verify/src", "examples", "benches"] {
        sources.extend(files_under(root().join(folder), "rs"));
    }
    // This file names missing files on purpose, to test the checker.
    sources.retain(|s| !s.ends_with("tests/api/docs.rs"));
    let mut missing = Vec::new();
    for source in sources {
        let text = std::fs::read_to_string(&source).unwrap();
        let mut named: BTreeSet<String> = doc_references(&text).into_iter().collect();
        if source.ends_with("Rocket.toml") {
            named.extend(
                text.split_whitespace()
                    .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '/'))
                    .filter(|w| looks_like_a_path(w))
                    .map(str::to_string),
            );
        }
        for reference in named {
            let (path, fragment) = reference
                .split_once('#')
                .map_or((reference.as_str(), None), |(p, f)| (p, Some(f)));
            let target = root().join(path);
            let found = path_exists(&source, path)
                && fragment.is_none_or(|fragment| {
                    let text = std::fs::read_to_string(&target).unwrap_or_default();
                    headings(&text).iter().any(|h| h == fragment)
                });
            if !found {
                missing.push(format!("{}: {reference}", source.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named but missing:\n{}",
        missing.join("\n")
    );
}

/// The shell variables `$NAME` / `${NAME}` a line uses, and the ones it sets (`NAME=…`,
/// `export NAME=…`), leaving out comments.
fn variables(line: &str) -> (Vec<String>, Vec<String>) {
    let code = match line.trim_start().starts_with('#') {
        true => "",
        false => line.split(" #").next().unwrap_or(""),
    };
    let name = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let used = code
        .split('$')
        .skip(1)
        .map(|after| name(after.trim_start_matches('{')))
        .filter(|n| {
            n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        })
        .collect();
    let set = code
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '(' | '&' | '|'))
        .filter_map(|word| word.split_once('='))
        .map(|(n, _)| n.to_string())
        .filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    (used, set)
}

/// The variables used in `text`'s shell examples before any example set them.
fn unset_variables(text: &str, already_set: &[&str]) -> Vec<String> {
    let mut set: BTreeSet<String> = already_set.iter().map(|s| s.to_string()).collect();
    let mut unset = Vec::new();
    for block in shell_blocks(text) {
        for line in block.lines() {
            let (used, newly_set) = variables(line);
            set.extend(newly_set);
            unset.extend(
                used.into_iter()
                    .filter(|v| !set.contains(v))
                    .map(|v| format!("${v} in `{}`", line.trim())),
            );
        }
    }
    unset
}

#[test]
fn every_variable_an_example_uses_is_set_before() {
    let mut unset = Vec::new();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    unset.extend(
        unset_variables(&readme, &[])
            .into_iter()
            .map(|v| format!("README.md: {v}")),
    );
    // The guides continue the README's walkthrough, which sets these two.
    for file in markdown_under(root().join("docs")) {
        let text = std::fs::read_to_string(&file).unwrap();
        unset.extend(
            unset_variables(&text, &["PASSWORD", "TOKEN"])
                .into_iter()
                .map(|v| format!("{}: {v}", file.display())),
        );
    }
    assert!(
        unset.is_empty(),
        "variables used before they are set:\n{}",
        unset.join("\n")
    );
}

#[test]
fn the_examples_call_the_binary_stamp_and_the_readme_says_how_to_install_it() {
    let readme_path = root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    assert!(readme.contains("cargo install --path ."));
    let mut other_names = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for block in shell_blocks(&text) {
            for line in block.lines() {
                let command = line.split(" #").next().unwrap().trim();
                if [
                    "cargo run --release -- ",
                    "target/release/stamp",
                    "./stamp ",
                ]
                .iter()
                .any(|name| command.contains(name))
                {
                    other_names.push(format!("{}: {command}", file.display()));
                }
            }
        }
    }
    // The one exception: the first set-up command, which needs no installed binary.
    assert_eq!(
        other_names,
        [format!(
            "{}: cargo run --release -- serve",
            readme_path.display()
        )],
        "examples that run the binary by another name than `stamp`"
    );
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
    let file = root().join("README.md");
    assert_eq!(
        broken_links(
            &file,
            "[x](docs/nope.md) [y](docs/keys.md#nope) [z](#nope) ```"
        ),
        [
            format!("{}: docs/nope.md (no such file)", file.display()),
            format!(
                "{}: docs/keys.md#nope (no such heading in {})",
                file.display(),
                root().join("docs/keys.md").display()
            ),
            format!(
                "{}: #nope (no such heading in {})",
                file.display(),
                file.display()
            ),
        ]
    );
    assert!(broken_links(&file, "[k](docs/keys.md#rotation-runbook)").is_empty());
    assert!(looks_like_a_path("tests/api/docs.rs") && looks_like_a_path("docs/deploy/"));
    assert!(!looks_like_a_path("orders:read") && !looks_like_a_path("/srv/stamp/stamp.db"));
    assert_eq!(
        doc_references("// see docs/sessions.md, and README.md#keys."),
        ["docs/sessions.md", "README.md#keys"]
    );
}

#[test]
fn the_variable_checker_finds_what_it_should() {
    let text = "```sh\nA=$(cat x) # uses $NOT_IN_A_COMMENT\necho \"$A ${B}\"\n```\n\
                ```rust\nlet c = \"$C\";\n```\n```sh\nexport B=1; echo $B $A\n```\n";
    assert_eq!(unset_variables(text, &[]), ["$B in `echo \"$A ${B}\"`"]);
    assert!(unset_variables(text, &["B"]).is_empty());
}
