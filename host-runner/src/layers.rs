//! The layer table of `lib.rs` ([`LAYERS`](crate::LAYERS)), checked
//! against the sources: every module of `src/` has a row, and no module
//! imports one of its own row or a higher one (a path through `crate::`,
//! `super::`, `self::` or a child module, in `use` or in code, tests
//! included). It reads Rust as text, as far as paths go: comments, strings
//! and character literals are blanked first. It does not check what a
//! module may do with what it imports, nor external crates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root, e.g. `["serve", "handle"]`.
type ModulePath = Vec<String>;

/// Every module that has a file, from the file's place under `src/`.
fn modules(src: &Path) -> BTreeMap<ModulePath, PathBuf> {
    let mut found = BTreeMap::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src/");
            let mut module: ModulePath = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|last| last == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] || module == ["layers"] {
                continue; // the root, the binary and this check sit outside the layers
            }
            found.insert(module, path);
        }
    }
    found
}

/// `source` with comments, string literals and character literals replaced
/// by spaces, so that only code is left to read paths from.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let at = |i: usize, text: &str| {
        text.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    while i < chars.len() {
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut depth = 0;
            while i < chars.len() {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if chars[i] == 'r' && (at(i + 1, "\"") || at(i + 1, "#")) {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            i += 2 + hashes;
            while i < chars.len() && !at(i, &close) {
                i += 1;
            }
            i += close.len();
            out.push(' ');
        } else if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if chars[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime.
            let end = if chars.get(i + 1) == Some(&'\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|p| i + 2 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    i = end + 1;
                    out.push(' ');
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        tokens.push(match c {
            ':' if chars.get(i + 1) == Some(&':') => {
                i += 1;
                Token::PathSep
            }
            '{' => Token::Open,
            '}' => Token::Close,
            ',' => Token::Comma,
            '*' => Token::Star,
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        });
        i += 1;
    }
    tokens
}

/// Reads a path (with `{…}` groups) from `tokens[*i]`, which follows a
/// `::`, appending every full path it spells to `out`.
fn path_tail(tokens: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    match tokens.get(*i) {
        Some(Token::Open) => {
            *i += 1;
            loop {
                match tokens.get(*i) {
                    Some(Token::Close) => {
                        *i += 1;
                        return;
                    }
                    Some(Token::Comma) => *i += 1,
                    Some(_) => path_tail(tokens, i, prefix, out),
                    None => return,
                }
            }
        }
        Some(Token::Ident(name)) => {
            let mut path = prefix.to_vec();
            if name != "self" {
                path.push(name.clone());
            }
            *i += 1;
            if tokens.get(*i) == Some(&Token::PathSep) {
                *i += 1;
                path_tail(tokens, i, &path, out);
            } else {
                out.push(path);
            }
        }
        Some(Token::Star) => {
            *i += 1;
            out.push(prefix.to_vec());
        }
        _ => out.push(prefix.to_vec()),
    }
}

/// Every crate-internal path in one file's code, resolved to the module
/// (with a file) it names, and every identifier.
fn imports(
    module: &[String],
    code: &str,
    known: &BTreeSet<ModulePath>,
    reexports: &BTreeMap<String, ModulePath>,
) -> (Vec<ModulePath>, Vec<String>) {
    let tokens = tokens(code);
    let mut found = Vec::new();
    let mut idents = Vec::new();
    // Inline modules (`mod tests { … }`) change what `super` means.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if inline.last().is_some_and(|(_, at)| *at == depth) {
                    inline.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Open)) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Token::Ident(first) if tokens.get(i + 1) == Some(&Token::PathSep) => {
                let preceded_by_path = i > 0 && tokens[i - 1] == Token::PathSep;
                let mut paths = Vec::new();
                let mut j = i + 2;
                path_tail(&tokens, &mut j, std::slice::from_ref(first), &mut paths);
                if !preceded_by_path {
                    let here: ModulePath = module
                        .iter()
                        .cloned()
                        .chain(inline.iter().map(|(name, _)| name.clone()))
                        .collect();
                    found.extend(
                        paths
                            .iter()
                            .filter_map(|p| resolve(&here, p, known, reexports)),
                    );
                }
                idents.extend(paths.into_iter().flatten());
                i = j;
                continue;
            }
            Token::Ident(word) => idents.push(word.clone()),
            _ => {}
        }
        i += 1;
    }
    (found, idents)
}

/// The module with a file that `path`, written in module `here`, names.
fn resolve(
    here: &[String],
    path: &[String],
    known: &BTreeSet<ModulePath>,
    reexports: &BTreeMap<String, ModulePath>,
) -> Option<ModulePath> {
    let mut base: ModulePath = here.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        Some("self") => rest = &rest[1..],
        _ => {}
    }
    let full: ModulePath = base.into_iter().chain(rest.iter().cloned()).collect();
    // A bare path names a module only through a child module of `here`.
    let bare = !matches!(path[0].as_str(), "crate" | "super" | "self");
    if bare && !known.contains(&full[..here.len() + 1].to_vec()) {
        return None;
    }
    let longest = (1..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|prefix| known.contains(prefix));
    match longest {
        Some(module) => Some(module),
        // An item the root re-exports (`crate::ServeOptions`).
        None if full.len() == 1 => reexports.get(&full[0]).cloned(),
        None => None,
    }
}

/// The row of [`LAYERS`](crate::LAYERS) a module belongs to: its longest
/// entry that is the module or contains it; and that entry.
fn row(module: &[String]) -> Option<(usize, String)> {
    let name = module.join("::");
    crate::LAYERS
        .iter()
        .enumerate()
        .flat_map(|(index, row)| row.iter().map(move |entry| (index, *entry)))
        .filter(|(_, entry)| name == *entry || name.starts_with(&format!("{entry}::")))
        .max_by_key(|(_, entry)| entry.len())
        .map(|(index, entry)| (index, entry.to_owned()))
}

/// Every import against the table, as `(file, imported entry)`, plus the
/// modules that have no row.
fn violations() -> (BTreeSet<(String, String)>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let known: BTreeSet<ModulePath> = modules.keys().cloned().collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexports = lib_reexports(&lib, &known);
    let mut found = BTreeSet::new();
    let mut unplaced = Vec::new();
    for (module, file) in &modules {
        let Some((from_row, from_entry)) = row(module) else {
            unplaced.push(module.join("::"));
            continue;
        };
        let source = std::fs::read_to_string(file).expect("a source file");
        let (targets, idents) = imports(module, &code_only(&source), &known, &reexports);
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        for target in targets {
            let Some((to_row, to_entry)) = row(&target) else {
                continue;
            };
            if to_entry != from_entry && to_row <= from_row {
                found.insert((relative.clone(), to_entry));
            }
        }
        // A function named for a layer above (`…_for_check`) serves it
        // without importing it.
        let above = crate::LAYERS[..=from_row].iter().flat_map(|row| row.iter());
        for entry in above.filter(|entry| **entry != from_entry) {
            let leaf = entry.rsplit("::").next().unwrap_or(entry);
            let named = format!("_for_{leaf}");
            let serves =
                |ident: &String| ident.ends_with(&named) || ident.contains(&format!("{named}_"));
            if idents.iter().any(serves) {
                found.insert((relative.clone(), (*entry).to_owned()));
            }
        }
    }
    (found, unplaced)
}

/// What lib.rs re-exports at the root, by name: `Server` → `serve`.
fn lib_reexports(lib: &str, known: &BTreeSet<ModulePath>) -> BTreeMap<String, ModulePath> {
    let code = code_only(lib);
    let tokens = tokens(&code);
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Token::Ident(first) = &tokens[i]
            && tokens.get(i + 1) == Some(&Token::PathSep)
        {
            let mut paths = Vec::new();
            let mut j = i + 2;
            path_tail(&tokens, &mut j, std::slice::from_ref(first), &mut paths);
            for path in paths {
                let module = (1..=path.len())
                    .rev()
                    .map(|n| path[..n].to_vec())
                    .find(|prefix| known.contains(prefix));
                if let (Some(module), Some(name)) = (module, path.last()) {
                    map.insert(name.clone(), module);
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    map
}

#[test]
fn every_module_has_a_row_in_the_layer_table() {
    let (_, unplaced) = violations();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS in lib.rs (add each to its layer): {unplaced:?}"
    );
}

#[test]
fn no_module_imports_its_own_layer_or_a_higher_one() {
    let (found, _) = violations();
    assert!(
        found.is_empty(),
        "imports against the layer table of lib.rs ((file, the layer it reaches up to)): {found:?}"
    );
}

#[test]
fn the_layer_check_sees_imports_through_crate_super_groups_and_child_modules() {
    let known: BTreeSet<ModulePath> = [
        vec!["serve".to_owned()],
        vec!["serve".to_owned(), "handle".to_owned()],
        vec!["metrics".to_owned()],
        vec!["metrics".to_owned(), "text".to_owned()],
        vec!["units".to_owned()],
    ]
    .into();
    let code = code_only(
        "use crate::{units::{self, HumanSize}, serve};\n\
         // crate::nothing in a comment\n\
         let s = \"crate::nothing in a string\";\n\
         use super::handle::x; use text::header; fn f<'a>() { let c = '{'; Ordering::Relaxed; }\n\
         mod tests { use super::*; }",
    );
    let here = vec!["serve".to_owned(), "failure".to_owned()];
    let (found, _) = imports(&here, &code, &known, &BTreeMap::new());
    assert_eq!(
        found,
        [
            vec!["units".to_owned()],
            vec!["units".to_owned()],
            vec!["serve".to_owned()],
            vec!["serve".to_owned(), "handle".to_owned()],
            vec!["serve".to_owned()]
        ]
    );
    let in_metrics = vec!["metrics".to_owned()];
    let (found, _) = imports(
        &in_metrics,
        &code_only("use text::header;"),
        &known,
        &BTreeMap::new(),
    );
    assert_eq!(found, [vec!["metrics".to_owned(), "text".to_owned()]]);
}
