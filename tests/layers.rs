//! The crate's layering rule (crate docs, "Layers"): a module refers only to its own layer and
//! the layers below, and the two statistical layers do not use Burn. Checked on the source
//! text: every `crate::` path outside comments in `src/` (the program under `src/bin` sits
//! above all layers and is not checked).

use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules and their layers, lowest first.
const LAYERS: [(&str, u8); 10] = [
    ("digest", 0),
    ("error", 0),
    ("stats", 1),
    ("certificate", 2),
    ("smoothing", 3),
    ("attack", 4),
    ("data", 4),
    ("models", 4),
    ("runtime", 5),
    ("workflow", 5),
];

/// Layers that must not use Burn.
const WITHOUT_BURN: [&str; 2] = ["stats", "certificate"];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/stats/binomial.rs` -> `stats`).
fn owner(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap();
    name.trim_end_matches(".rs").to_string()
}

/// Code lines of a file: doc and line comments removed (links in docs may point anywhere).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = line.split("//").next().unwrap_or("");
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// Top-level modules named by `crate::` paths in a line of code.
fn crate_paths(code: &str) -> Vec<String> {
    code.match_indices("crate::")
        .map(|(at, m)| {
            let rest = &code[at + m.len()..];
            if rest.starts_with('{') {
                return "{".to_string();
            }
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn no_module_refers_to_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in files {
        let module = owner(&src, &file);
        if module == "bin" || module == "lib" {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
        let text = fs::read_to_string(&file).unwrap();
        for (line, code) in code_lines(&text) {
            for target in crate_paths(code) {
                checked += 1;
                // A grouped `crate::{...}` import would hide its modules from this check.
                match layer(&target) {
                    Some(l) if l <= own => {}
                    _ => violations.push(format!(
                        "{}:{line}: {module} (layer {own}) refers to crate::{target}",
                        file.display()
                    )),
                }
            }
            if WITHOUT_BURN.contains(&module.as_str()) && code.contains("burn") {
                violations.push(format!("{}:{line}: {module} uses Burn", file.display()));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} crate paths found: is the parser broken?"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_parser_sees_paths_and_skips_comments() {
    assert_eq!(
        crate_paths("use crate::stats::binomial; x(crate::error::E)"),
        vec!["stats", "error"]
    );
    assert_eq!(crate_paths("use crate::{a, b};"), vec!["{"]);
    let lines: Vec<_> = code_lines("/// [`crate::workflow`]\nuse crate::stats; // crate::attack\n")
        .map(|(_, c)| c)
        .collect();
    assert_eq!(lines, vec!["use crate::stats; "]);
}
