//! Parsing ingredient declarations as brands print them.
//!
//! Input is the declaration as text; lines are the chunks a source gave (Sephora's list items,
//! which are sometimes whole lists, sometimes variant headers, sometimes a list wrapped mid-word
//! onto several items, sometimes marketing bullets). The output keeps label order, per section
//! (variant), with "May Contain" entries apart.
//!
//! [`IngredientList::render`] writes the canonical text of a parse; parsing that text again gives
//! the same parse (tested by property tests), so stored declarations can be normalized safely.

use serde::Serialize;

/// One ingredient as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The declared name, cleaned: whitespace collapsed, footnote markers and percentages removed,
    /// parentheses kept (`Water (Aqua, Eau)`, `Helianthus Annuus (Sunflower) Seed Oil`).
    pub text: String,
    /// A declared concentration (`2`, `7.5`), without the `%`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
    /// Whether it carried a footnote marker (`*`, `†`: organic, natural origin ...).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub footnote: bool,
}

/// One declared list: the whole product, or one variant / step / shade.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Section {
    /// The header (`Variant A`, `Step 2`, `Capri Eau de Parfum`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The ingredients, in label order.
    pub ingredients: Vec<Entry>,
    /// Ingredients the product may contain (`May Contain`, `+/-`), usually colorants.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub may_contain: Vec<Entry>,
}

/// A parsed declaration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngredientList {
    /// The lists, in declared order.
    pub sections: Vec<Section>,
    /// Text that was recognised as not being ingredients (marketing lines, footnote
    /// explanations, disclaimers), kept so nothing is silently dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl IngredientList {
    /// Every entry of every section, may-contain included.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.sections.iter().flat_map(|s| s.ingredients.iter().chain(s.may_contain.iter()))
    }

    /// True when no ingredient was found.
    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }

    /// The canonical text of this parse; `parse(render(x)) == x` for any `x` that `parse` made.
    pub fn render(&self) -> String {
        let mut lines = Vec::new();
        for s in &self.sections {
            if let Some(label) = &s.label {
                lines.push(format!("{label}:"));
            }
            let mut line = s.ingredients.iter().map(Entry::render).collect::<Vec<_>>().join(", ");
            if !s.may_contain.is_empty() {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str("May Contain: ");
                line.push_str(&s.may_contain.iter().map(Entry::render).collect::<Vec<_>>().join(", "));
            }
            if !line.is_empty() {
                // A terminal comma marks the end of a complete list, so the next line is never
                // glued onto it as a wrapped continuation.
                line.push(',');
                lines.push(line);
            }
        }
        lines.join("\n")
    }
}

impl Entry {
    fn render(&self) -> String {
        let mut s = self.text.clone();
        if let Some(p) = &self.percent {
            s.push(' ');
            s.push_str(p);
            s.push('%');
        }
        if self.footnote {
            s.push('*');
        }
        s
    }
}

/// Longest header or ingredient text kept; longer fragments are notes.
const MAX_ENTRY_CHARS: usize = 200;

/// Parses a declaration (see the module docs).
pub fn parse(raw: &str) -> IngredientList {
    let mut out = IngredientList::default();
    let mut current = Section::default();
    let mut pending = String::new(); // ingredient text of the current section, lines joined

    let flush = |pending: &mut String, current: &mut Section, notes: &mut Vec<String>| {
        let text = std::mem::take(pending);
        let (main, may) = split_may_contain(&text);
        parse_items(main, &mut current.ingredients, notes, false);
        if let Some(may) = may {
            parse_items(may, &mut current.may_contain, notes, true);
        }
    };

    // Line and paragraph separators (U+2028, U+2029) break items as a new line does.
    for line in raw.split(['\n', '\u{2028}', '\u{2029}']).map(clean_line).filter(|l| !l.is_empty()) {
        match classify(&line) {
            Line::Header(label) => {
                flush(&mut pending, &mut current, &mut out.notes);
                if current.label.is_some() || !current.ingredients.is_empty() || !current.may_contain.is_empty() {
                    out.sections.push(std::mem::take(&mut current));
                }
                current.label = Some(label);
            }
            Line::HeaderWithList(label, list) => {
                flush(&mut pending, &mut current, &mut out.notes);
                if current.label.is_some() || !current.ingredients.is_empty() || !current.may_contain.is_empty() {
                    out.sections.push(std::mem::take(&mut current));
                }
                current.label = Some(label);
                pending.push_str(&list);
            }
            Line::Note(text) => out.notes.push(text),
            Line::List(text) if text.is_empty() => {}
            Line::List(text) => {
                if pending.is_empty() {
                    pending.push_str(&text);
                } else if pending.ends_with(|c: char| c.is_alphanumeric() || c == ')' || c == '-') {
                    // A list wrapped onto the next item ("... Pentylene" / "Glycol, ...").
                    pending.push(' ');
                    pending.push_str(&text);
                } else {
                    pending.push_str(", ");
                    pending.push_str(&text);
                }
            }
        }
    }
    flush(&mut pending, &mut current, &mut out.notes);
    if current.label.is_some() || !current.ingredients.is_empty() || !current.may_contain.is_empty() {
        out.sections.push(current);
    }
    // A header with nothing under it is a note, not an empty product.
    out.sections.retain(|s| {
        let keep = !s.ingredients.is_empty() || !s.may_contain.is_empty();
        if !keep && let Some(l) = &s.label {
            out.notes.push(format!("{l}:"));
        }
        keep
    });
    out
}

enum Line {
    Header(String),
    HeaderWithList(String, String),
    Note(String),
    List(String),
}

/// Whether a character is invisible and only ever joins or marks text (zero-width spaces and
/// joiners, direction marks, the byte order mark): labels copied from web pages carry them inside
/// names (`Lina\u{200B}lool`), so they are dropped, never read as a separator.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}')
}

/// Folds the characters labels vary in: ligatures, curly quotes, dashes, odd spaces, invisible
/// characters, soft hyphens.
fn clean_line(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'ﬁ' => s.push_str("fi"),
            'ﬂ' => s.push_str("fl"),
            '\u{2018}' | '\u{2019}' | '\u{00B4}' | '`' => s.push('\''),
            '\u{201C}' | '\u{201D}' => s.push('"'),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => s.push('-'),
            // A soft hyphen stands where a hyphen was (`Pentapeptide\u{AD}17`, `C12\u{AD}-15`).
            '\u{00AD}' => {
                if !s.ends_with('-') && chars.peek() != Some(&'-') {
                    s.push('-');
                }
            }
            c if is_invisible(c) => {}
            '\u{00A0}' | '\u{2002}'..='\u{200A}' | '\t' | '\r' => s.push(' '),
            '•' | '·' | '|' => s.push(','),
            c if c.is_control() => s.push(' '),
            c => s.push(c),
        }
    }
    collapse_spaces(&s)
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn depth0_commas(s: &str) -> usize {
    let mut depth = 0i32;
    let mut n = 0;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ',' && i > 0 && chars[i - 1].is_ascii_digit() && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()) {
            continue;
        }
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = (depth - 1).max(0),
            ',' | ';' if depth == 0 => n += 1,
            _ => {}
        }
    }
    n
}

const PROSE_WORDS: [&str; 14] = [
    " and ",
    " the ",
    " with ",
    " to ",
    " your ",
    " skin",
    " helps ",
    " for ",
    " that ",
    " is ",
    " are ",
    " of ",
    " may change",
    " please ",
];

fn looks_like_prose(s: &str) -> bool {
    let lower = format!(" {} ", s.to_lowercase());
    let hits = PROSE_WORDS.iter().filter(|w| lower.contains(*w)).count();
    let words = s.split_whitespace().count();
    lower.contains(" please ")
        || lower.contains("ingredient list")
        || (hits >= 2 && words >= 5)
        || words > 30 && hits >= 1
}

fn is_label_word(s: &str) -> bool {
    let l = s.to_lowercase();
    [
        "ingredients",
        "ingredient",
        "active ingredients",
        "active ingredient",
        "inactive ingredients",
        "inactive ingredient",
        "other ingredients",
        "key ingredients",
        "contains",
        // "Allergens: Linalool." declares the allergens of the fragrance: ingredients, not a note.
        "allergens",
        "allergen",
        "fragrance allergens",
        "allergens in fragrance",
    ]
    .contains(&l.trim())
}

fn classify(line: &str) -> Line {
    let commas = depth0_commas(line);
    // "Variant A:", "Capri Eau de Parfum:", "Step 1:" alone on a line.
    if let Some(head) = line.strip_suffix(':') {
        let head = head.trim();
        if commas == 0 && head.chars().any(char::is_alphanumeric) && head.chars().count() <= 80 {
            return if is_label_word(head) { Line::List(String::new()) } else { Line::Header(head.to_owned()) };
        }
    }
    if let Some((head, rest)) = line.split_once(": ") {
        let head_t = head.trim();
        let rest_t = rest.trim();
        if head_t.to_lowercase().ends_with("may contain") {
            return Line::List(line.to_owned());
        }
        if depth0_commas(head_t) == 0
            && head_t.chars().any(char::is_alphanumeric)
            && head_t.chars().count() <= 60
            && !head_t.contains('(')
        {
            if is_label_word(head_t) {
                // "Ingredients: Water, ..."
                return Line::List(rest_t.to_owned());
            }
            if starts_with_percent(rest_t) {
                // "Avobenzone: 2.5%, Homosalate: 6.0%, ..."
                return Line::List(line.replace(": ", " "));
            }
            if depth0_commas(rest_t) >= 3 && !looks_like_prose(rest_t) {
                // "Step 1: Water/Aqua/Eau, Alcohol Denat., ..."
                return Line::HeaderWithList(head_t.to_owned(), rest_t.to_owned());
            }
            if depth0_commas(rest_t) < 3
                && (looks_like_prose(rest_t) || rest_t.ends_with('.'))
                && !starts_with_percent(rest_t)
            {
                // "Hyaluronic Acid: Improves overall appearance ..."
                return Line::Note(line.to_owned());
            }
        }
    }
    if line.starts_with('-') && line.contains(": ") || commas <= 1 && looks_like_prose(line) {
        return Line::Note(line.to_owned());
    }
    Line::List(line.to_owned())
}

fn starts_with_percent(s: &str) -> bool {
    let num: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    !num.is_empty() && s[num.len()..].trim_start().starts_with('%')
}

/// Splits off a "May Contain" / "+/-" part.
fn split_may_contain(text: &str) -> (&str, Option<&str>) {
    let lower = text.to_lowercase();
    let markers = ["may contain:", "may contain", "[+/-", "(+/-)", "[+/-]", "+/-:", "+/-"];
    let found = markers.iter().filter_map(|m| lower.find(m).map(|i| (i, m.len()))).min_by_key(|(i, _)| *i);
    match found {
        // `lower` and `text` differ in byte length only for the few characters whose lower case
        // is longer; map back through char indices to stay on boundaries.
        Some((i, len)) if text.is_char_boundary(i) && text.is_char_boundary(i + len) && lower.len() == text.len() => {
            let rest = text[i + len..].trim_start_matches([']', ')', ':', ' ']);
            (&text[..i], Some(rest))
        }
        _ => (text, None),
    }
}

/// Footnote markers (`key` folds the same four into spaces).
pub(crate) const FOOTNOTE_MARKS: [char; 4] = ['*', '†', '‡', '°'];

/// Drops brackets that have no partner, so that "Water (Aqua, Eau" cannot swallow the rest of the
/// list into one entry.
fn balance(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut keep = vec![true; chars.len()];
    let mut stack: Vec<(char, usize)> = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '(' | '[' | '{' => stack.push((c, i)),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.last().is_some_and(|(o, _)| *o == open) {
                    stack.pop();
                } else {
                    keep[i] = false;
                }
            }
            _ => {}
        }
    }
    for (_, i) in stack {
        keep[i] = false;
    }
    chars.iter().zip(keep).map(|(c, k)| if k { *c } else { ' ' }).collect()
}

fn parse_items(text: &str, out: &mut Vec<Entry>, notes: &mut Vec<String>, may_contain: bool) {
    for token in split_depth0(&balance(text)) {
        // "Fragrance*. *Plant origin." : an explanation glued after the last ingredient.
        let (item, explanation) = split_explanation(&token);
        if let Some(e) = explanation {
            notes.push(e.to_owned());
        }
        // Splitting off an explanation can leave a bracket without its partner ("(Aqua.*, ...)"),
        // and the separators it enclosed then separate.
        for piece in split_depth0(&balance(item)) {
            if let Some(entry) = entry(&piece, may_contain) {
                if entry.text.chars().count() > MAX_ENTRY_CHARS
                    || looks_like_prose(&entry.text) && entry.text.split_whitespace().count() > 6
                {
                    notes.push(entry.text);
                } else {
                    out.push(entry);
                }
            }
        }
    }
}

fn split_depth0(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // "1,2-Hexanediol", "2-Oleamido-1,3-Octadecanediol": a comma between digits is a locant.
        let locant =
            c == ',' && i > 0 && chars[i - 1].is_ascii_digit() && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if locant {
            cur.push(c);
            continue;
        }
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                cur.push(c);
            }
            ')' | ']' | '}' => {
                depth = (depth - 1).max(0);
                cur.push(c);
            }
            ',' | ';' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn split_explanation(token: &str) -> (&str, Option<&str>) {
    // ". *" starts a footnote explanation; so does a leading "*" followed by typical words.
    if let Some(i) = token.find(". *").or_else(|| token.find(".*")) {
        let after = token[i + 1..].trim();
        if is_footnote_explanation(after) {
            return (&token[..i], Some(after));
        }
    }
    let t = token.trim();
    if is_footnote_explanation(t) {
        return ("", Some(t));
    }
    (token, None)
}

fn is_footnote_explanation(s: &str) -> bool {
    if !s.starts_with(FOOTNOTE_MARKS) {
        return false;
    }
    let l = s.to_lowercase();
    [
        "organic",
        "origin",
        "certified",
        "natural",
        "derived",
        "ingredient",
        "fair trade",
        "wildcrafted",
        "sourced",
        "biodynamic",
        "ecocert",
        "from ",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// What a "May Contain" part may repeat before its first entry ("May Contain/Peut Contenir
/// (+/-): Titanium Dioxide"), lower case.
const MAY_CONTAIN_FILLERS: [&str; 4] = ["/peut contenir", "(+/-)", "[+/-]", "+/-"];

/// Cleans one token into an entry (or nothing, for empty or punctuation-only tokens).
fn entry(token: &str, may_contain: bool) -> Option<Entry> {
    // A colon is never part of an ingredient's name; leaving one in would make the rendered
    // list read as a header.
    let mut s = collapse_spaces(&token.replace(':', " "));
    let mut footnote = false;
    let mut percent = None;
    for _ in 0..16 {
        let before = s.clone();
        // Markers and stray punctuation at either end.
        let trimmed =
            s.trim_matches(|c: char| FOOTNOTE_MARKS.contains(&c) || c == ' ' || c == ':' || c == '"' || c == '\'');
        if trimmed.len() != s.len() && (s.starts_with(FOOTNOTE_MARKS) || s.ends_with(FOOTNOTE_MARKS)) {
            footnote = true;
        }
        s = trimmed.to_owned();
        if let Some(rest) = s.strip_suffix('.') {
            // "Alcohol Denat." keeps its period only when it is part of the name.
            if !rest.to_lowercase().ends_with("denat") {
                s = rest.trim_end().to_owned();
            }
        }
        if let Some(rest) = s.strip_prefix("and ").or_else(|| s.strip_prefix("And ")) {
            s = rest.to_owned();
        }
        if may_contain
            && let Some(f) =
                MAY_CONTAIN_FILLERS.iter().find(|f| s.get(..f.len()).is_some_and(|h| h.eq_ignore_ascii_case(f)))
        {
            s = s[f.len()..].trim_start().to_owned();
        }
        if percent.is_none()
            && let Some((name, p)) = take_percent(&s)
        {
            percent = Some(p);
            s = name;
        }
        if s == before {
            break;
        }
    }
    let s = collapse_spaces(&s);
    if !s.chars().any(char::is_alphanumeric) {
        return None;
    }
    Some(Entry { text: s, percent, footnote })
}

/// Takes a concentration off either end: `Octinoxate 7.5%`, `10% Glycolic Acid`, `Zinc Oxide (20%)`,
/// `Avobenzone 2.5 %`.
fn take_percent(s: &str) -> Option<(String, String)> {
    let is_num = |t: &str| {
        !t.is_empty()
            && t.chars().all(|c| c.is_ascii_digit() || c == '.')
            && t.chars().filter(|c| *c == '.').count() <= 1
            && !t.starts_with('.')
            && !t.ends_with('.')
    };
    // Trailing "(20%)".
    if let Some(inner) = s.strip_suffix("%)").and_then(|r| r.rsplit_once('(')) {
        let (name, num) = inner;
        if is_num(num.trim()) && !name.trim().is_empty() {
            return Some((name.trim().to_owned(), num.trim().to_owned()));
        }
    }
    // "Salicylic Acid 2% (BHA)": the strength sits between the name and a parenthesised note.
    if s.ends_with(')')
        && let Some(open) = last_group_start(s)
        && let Some((name, num)) = s[..open].trim_end().strip_suffix('%').and_then(|head| {
            let start = head.rfind(' ').map_or(0, |i| i + 1);
            let (name, num) = (head[..start].trim(), &head[start..]);
            (is_num(num) && !name.is_empty()).then(|| (name.to_owned(), num.to_owned()))
        })
    {
        return Some((format!("{name} {}", &s[open..]), num));
    }
    if let Some(rest) = s.strip_suffix('%') {
        let rest = rest.trim_end();
        let start = rest.rfind(' ').map_or(0, |i| i + 1);
        let num = &rest[start..];
        let name = rest[..start].trim();
        if is_num(num) && !name.is_empty() {
            return Some((name.to_owned(), num.to_owned()));
        }
    }
    if let Some(i) = s.find('%') {
        let num = s[..i].trim();
        let name = s[i + 1..].trim();
        if is_num(num) && name.chars().any(char::is_alphabetic) {
            return Some((name.to_owned(), num.to_owned()));
        }
    }
    None
}

/// Where the parenthesised group that ends `s` opens (`s` ends with `)`).
fn last_group_start(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A letter with its accent removed (`é` → `e`); other characters unchanged.
pub(crate) fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'ç' | 'Ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ñ' | 'Ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ý' | 'ÿ' | 'Ý' => 'y',
        'ß' => 's',
        c => c,
    }
}

/// The lookup key of a name: lower case, accents folded, spacing and punctuation normalized.
pub fn key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if is_invisible(c) {
            continue;
        }
        let folded = match c {
            '*' | '†' | '‡' | '°' | '_' => ' ',
            // "Water\Aqua\Eau": a backslash separates alternatives as a slash does.
            '\\' => '/',
            c => fold_accent(c),
        };
        if folded.is_ascii() {
            out.push(folded.to_ascii_lowercase());
        } else {
            out.extend(folded.to_lowercase());
        }
    }
    // The common case (no slash, no dash before a space, single spaces) skips the rewrites.
    let mut out = if out.contains('/') || out.contains("- ") {
        out.replace(" /", "/").replace("/ ", "/").replace(" - ", "-").replace("- ", "-")
    } else {
        out
    };
    let tidy = !out.starts_with(' ') && !out.ends_with(' ') && !out.contains("  ");
    if !tidy || out.chars().any(|c| c.is_whitespace() && c != ' ') {
        out = collapse_spaces(&out);
    }
    let trimmed = out.trim_end_matches('.').trim();
    if trimmed.len() != out.len() {
        out = trimmed.to_owned();
    }
    out
}

/// The keys under which an entry may be known, most specific first: the whole text, the text
/// without parentheses, what is inside the parentheses, and each part of a slash list.
pub fn candidate_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut push = |k: String| {
        if !k.is_empty() && !keys.contains(&k) {
            keys.push(k);
        }
    };
    push(key(text));
    let mut outside = String::new();
    let mut inside = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' | '[' => {
                if depth > 0 {
                    cur.push(c);
                }
                depth += 1;
            }
            ')' | ']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    inside.push(std::mem::take(&mut cur));
                } else {
                    cur.push(c);
                }
            }
            c if depth > 0 => cur.push(c),
            c => outside.push(c),
        }
    }
    let outside_key = key(&outside);
    push(outside_key.clone());
    for part in outside_key.split('/') {
        push(part.trim().to_owned());
    }
    for inner in inside {
        for alt in inner.split([',', '/']) {
            push(key(alt));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(l: &IngredientList) -> Vec<&str> {
        l.sections.iter().flat_map(|s| s.ingredients.iter().map(|e| e.text.as_str())).collect()
    }

    #[test]
    fn keys_fold_case_accents_and_spacing() {
        assert_eq!(key("  Tocophérol "), "tocopherol");
        assert_eq!(key("Aqua / Water / Eau"), "aqua/water/eau");
        assert_eq!(key("ALCOHOL DENAT."), "alcohol denat");
        let k = candidate_keys("Water (Aqua, Eau)");
        assert!(k.contains(&"water".to_owned()) && k.contains(&"aqua".to_owned()) && k.contains(&"eau".to_owned()));
        let k = candidate_keys("Water/Aqua/Eau");
        assert!(k.contains(&"water".to_owned()) && k.contains(&"eau".to_owned()));
        let k = candidate_keys("Helianthus Annuus (Sunflower) Seed Oil");
        assert_eq!(k[0], "helianthus annuus (sunflower) seed oil");
        assert!(k.contains(&"helianthus annuus seed oil".to_owned()));
    }

    #[test]
    fn percentages_come_off_either_end() {
        assert_eq!(take_percent("Octinoxate 7.5%"), Some(("Octinoxate".into(), "7.5".into())));
        assert_eq!(take_percent("10% Glycolic Acid"), Some(("Glycolic Acid".into(), "10".into())));
        assert_eq!(take_percent("Zinc Oxide (20%)"), Some(("Zinc Oxide".into(), "20".into())));
        assert_eq!(take_percent("Glycerin"), None);
        // P469514 and P481347: a note in parentheses after the strength.
        assert_eq!(take_percent("Salicylic Acid 2% (BHA)"), Some(("Salicylic Acid (BHA)".into(), "2".into())));
        assert_eq!(
            take_percent("Salicylic Acid 0.5% (Anti-Acne)"),
            Some(("Salicylic Acid (Anti-Acne)".into(), "0.5".into()))
        );
        assert_eq!(take_percent("Ceramide NP (Ceramide 3)"), None);
    }

    #[test]
    fn simple_list_keeps_order() {
        let l = parse("Water, Glycerin, Niacinamide.");
        assert_eq!(names(&l), ["Water", "Glycerin", "Niacinamide"]);
    }

    #[test]
    fn alcohol_denat_keeps_its_period() {
        let l = parse("Alcohol Denat., Water.");
        assert_eq!(names(&l), ["Alcohol Denat.", "Water"]);
    }
}
