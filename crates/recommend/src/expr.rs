//! Filter expressions over product attributes, and business rules (boost, bury, pin) that use
//! them. Storefront engineers type these in query strings and rule files, so the syntax is small
//! and every error names a position: `at 27: expected a value after "<="`.
//!
//! # Grammar
//! ```text
//! expr    := and ( ("or" | "||") and )*
//! and     := unary ( ("and" | "&&") unary )*
//! unary   := ("not" | "!") unary | primary
//! primary := "(" expr ")" | "true" | "false" | FIELD
//!          | FIELD ("=" | "==" | "!=" | "<" | "<=" | ">" | ">=") VALUE
//!          | FIELD "in" "[" VALUE ("," VALUE)* ","? "]" | FIELD "has" STRING
//! VALUE   := STRING ('…' or "…", `\` escapes the next character) | NUMBER (-12, 3.5) | true | false
//! ```
//! Keywords are case-insensitive, as are field names. `and` binds tighter than `or`.
//!
//! # Meaning
//! - Fields are declared by the caller with a [`FieldKind`], and each kind takes certain operators:
//!   `Bool` on its own or with `=`/`!=`; `Num` all comparisons and `in`; `Str` and `Path` `=`,
//!   `!=`, `in`; `List` only `has`. Anything else is a parse error, not a silent `false`.
//! - Text compares case-insensitively. On a `Path` field (the category) `=` is a prefix match by
//!   `/`-separated segments: `category = "skincare"` matches `Skincare/Moisturizers/Face Creams`
//!   but not `Skincare Tools`; segments are trimmed and empty ones ignored.
//! - A [`Value::Missing`] value (or one of another kind than declared) makes every comparison
//!   false except `!=`, which is true; `not` simply negates, so `not (price = 1)` is true for a
//!   product without a price, and so is `price != 1`, while `price < 1` and `price >= 1` are both
//!   false.
//! - Limits against hostile input: at most 2,000 characters, 32 levels of `(`/`not` nesting and
//!   256 nodes; beyond them parsing fails, it never overflows the stack.
//!
//! Business rules ([`BusinessRules`]) run **after** the safety layer, on the list it produced:
//! they only reorder that list (and rescale scores), so they cannot bring an excluded product back
//! or drop one.

use serde::Deserialize;

/// The kind of a field the caller declares to [`parse`]; it decides which operators apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Bool,
    Num,
    Str,
    List,
    /// A `/`-separated category path; `=` is a prefix match by segments.
    Path,
}

/// One attribute of a product as [`Attributes::get`] returns it, borrowed from the product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Missing,
    Bool(bool),
    Num(f64),
    /// Text, or a category path for a `Path` field.
    Str(&'a str),
    List(&'a [String]),
}

/// A product's attributes by field name (the names declared to [`parse`]).
pub trait Attributes {
    fn get(&self, field: &str) -> Value<'_>;
}

/// A parse error: `position` is the 1-based character column (one past the end for "ran out").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
pub struct ExprError {
    pub position: usize,
    pub message: String,
}

/// Most characters an expression may have.
pub const MAX_LEN: usize = 2000;
/// Deepest nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 32;
/// Most nodes (comparisons, constants, `not`, `and`, `or`) in one expression.
pub const MAX_NODES: usize = 256;

/// A parsed expression: parse once with [`parse`], evaluate with [`Expr::eval`] per product.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(Node);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Const(bool),
    Bool {
        field: Box<str>,
        value: bool,
        negate: bool,
    },
    /// `in` is `Eq` with several values.
    Num {
        field: Box<str>,
        op: Op,
        values: Vec<f64>,
    },
    Str {
        field: Box<str>,
        values: Vec<Box<str>>,
        negate: bool,
    },
    Path {
        field: Box<str>,
        paths: Vec<Vec<Box<str>>>,
        negate: bool,
    },
    Has {
        field: Box<str>,
        value: Box<str>,
    },
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

impl Expr {
    /// Whether a product's attributes satisfy the expression.
    pub fn eval(&self, a: &dyn Attributes) -> bool {
        self.0.eval(a)
    }
}

impl Node {
    fn eval(&self, a: &dyn Attributes) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::Bool { field, value, negate } => matches!(a.get(field), Value::Bool(b) if b == *value) != *negate,
            Node::Num { field, op, values } => match a.get(field) {
                Value::Num(x) => values.iter().any(|&v| match op {
                    Op::Eq => x == v,
                    Op::Ne => x != v,
                    Op::Lt => x < v,
                    Op::Le => x <= v,
                    Op::Gt => x > v,
                    Op::Ge => x >= v,
                }),
                _ => *op == Op::Ne,
            },
            Node::Str { field, values, negate } => {
                matches!(a.get(field), Value::Str(s) if values.iter().any(|v| eq_ci(s, v))) != *negate
            }
            Node::Path { field, paths, negate } => {
                let hit = match a.get(field) {
                    Value::Str(s) => paths.iter().any(|p| {
                        let mut segs = segments(s);
                        p.iter().all(|want| segs.next().is_some_and(|got| eq_ci(got, want)))
                    }),
                    _ => false,
                };
                hit != *negate
            }
            Node::Has { field, value } => matches!(a.get(field), Value::List(l) if l.iter().any(|x| eq_ci(x, value))),
            Node::Not(n) => !n.eval(a),
            Node::And(ns) => ns.iter().all(|n| n.eval(a)),
            Node::Or(ns) => ns.iter().any(|n| n.eval(a)),
        }
    }
}

/// Case-insensitive equality without allocating (ASCII fast path).
fn eq_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').map(str::trim).filter(|s| !s.is_empty())
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident,
    Str(String),
    Num(f64),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    And,
    Or,
    Not,
    In,
    Has,
    True,
    False,
    End,
}

struct Token<'s> {
    tok: Tok,
    text: &'s str,
    at: usize, // byte offset
}

fn err(src: &str, byte: usize, message: impl Into<String>) -> ExprError {
    ExprError { position: src[..byte].chars().count() + 1, message: message.into() }
}

fn lex(src: &str) -> Result<Vec<Token<'_>>, ExprError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = src[i..].chars().next().unwrap_or(' ');
        let start = i;
        let next = b.get(i + 1).copied();
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += c.len_utf8();
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '=' if next == Some(b'=') => (Tok::Op(Op::Eq), 2),
            '=' => (Tok::Op(Op::Eq), 1),
            '!' if next == Some(b'=') => (Tok::Op(Op::Ne), 2),
            '!' => (Tok::Not, 1),
            '<' if next == Some(b'=') => (Tok::Op(Op::Le), 2),
            '<' => (Tok::Op(Op::Lt), 1),
            '>' if next == Some(b'=') => (Tok::Op(Op::Ge), 2),
            '>' => (Tok::Op(Op::Gt), 1),
            '&' if next == Some(b'&') => (Tok::And, 2),
            '|' if next == Some(b'|') => (Tok::Or, 2),
            '&' | '|' => return Err(err(src, i, format!("expected \"{c}{c}\""))),
            '"' | '\'' => {
                let mut s = String::new();
                let mut chars = src[i + 1..].char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(err(src, i, format!("unterminated string: no closing {c}"))),
                        Some((j, '\\')) => match chars.next() {
                            Some((_, e)) => s.push(e),
                            None => return Err(err(src, i + 1 + j, "a \\ at the end of the input")),
                        },
                        Some((j, e)) if e == c => break i + 1 + j + 1,
                        Some((_, e)) => s.push(e),
                    }
                };
                (Tok::Str(s), end - i)
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|d| d.is_ascii_digit())) => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                    j += 1;
                }
                let text = &src[i..j];
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => (Tok::Num(n), j - i),
                    _ => return Err(err(src, i, format!("{text:?} is not a number"))),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let len = src[i..].find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(src.len() - i);
                let word = &src[i..i + len];
                let tok = match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    "has" => Tok::Has,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    _ => Tok::Ident,
                };
                (tok, len)
            }
            c => return Err(err(src, i, format!("unexpected character {:?}", c.to_string()))),
        };
        i += len;
        out.push(Token { tok, text: &src[start..i], at: start });
    }
    out.push(Token { tok: Tok::End, text: "", at: src.len() });
    Ok(out)
}

/// Parses an expression over the declared `fields` (name and kind; names match
/// case-insensitively and [`Attributes::get`] is called with the declared spelling).
pub fn parse(src: &str, fields: &[(&str, FieldKind)]) -> Result<Expr, ExprError> {
    if src.chars().count() > MAX_LEN {
        return Err(ExprError { position: MAX_LEN + 1, message: format!("longer than {MAX_LEN} characters") });
    }
    let toks = lex(src)?;
    let mut p = Parser { src, toks, i: 0, fields, depth: 0, nodes: 0 };
    let node = p.or()?;
    if p.peek().tok != Tok::End {
        return Err(p.error_here("expected \"and\", \"or\" or the end"));
    }
    Ok(Expr(node))
}

struct Parser<'s, 'f> {
    src: &'s str,
    toks: Vec<Token<'s>>,
    i: usize,
    fields: &'f [(&'f str, FieldKind)],
    depth: usize,
    nodes: usize,
}

impl<'s> Parser<'s, '_> {
    fn peek(&self) -> &Token<'s> {
        &self.toks[self.i]
    }

    fn bump(&mut self) -> &Token<'s> {
        let i = self.i;
        self.i = (i + 1).min(self.toks.len() - 1);
        &self.toks[i]
    }

    fn eat(&mut self, tok: Tok) -> bool {
        let hit = self.peek().tok == tok;
        if hit {
            self.bump();
        }
        hit
    }

    fn error_here(&self, what: &str) -> ExprError {
        let t = self.peek();
        err(self.src, t.at, format!("{what}, found {}", describe(t)))
    }

    fn node(&mut self, n: Node) -> Result<Node, ExprError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            let at = self.toks[self.i.saturating_sub(1)].at;
            return Err(err(self.src, at, format!("more than {MAX_NODES} conditions and operators")));
        }
        Ok(n)
    }

    fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.src, at, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let mut items = vec![self.and()?];
        while self.eat(Tok::Or) {
            items.push(self.and()?);
        }
        if items.len() == 1 { Ok(items.pop().unwrap_or(Node::Const(false))) } else { self.node(Node::Or(items)) }
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut items = vec![self.unary()?];
        while self.eat(Tok::And) {
            items.push(self.unary()?);
        }
        if items.len() == 1 { Ok(items.pop().unwrap_or(Node::Const(true))) } else { self.node(Node::And(items)) }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        let t = self.peek();
        match t.tok {
            Tok::Not => {
                let at = t.at;
                self.bump();
                self.enter(at)?;
                let inner = self.unary()?;
                self.depth -= 1;
                self.node(Node::Not(Box::new(inner)))
            }
            Tok::LParen => {
                let open = t.at;
                self.bump();
                self.enter(open)?;
                let inner = self.or()?;
                self.depth -= 1;
                if !self.eat(Tok::RParen) {
                    let col = err(self.src, open, "").position;
                    return Err(self.error_here(&format!("expected \")\" to close the \"(\" at {col}")));
                }
                Ok(inner)
            }
            Tok::True | Tok::False => {
                let b = t.tok == Tok::True;
                self.bump();
                self.node(Node::Const(b))
            }
            Tok::Ident => self.condition(),
            _ => Err(self.error_here("expected a field, \"(\", \"not\", true or false")),
        }
    }

    fn condition(&mut self) -> Result<Node, ExprError> {
        let (at, text) = (self.peek().at, self.peek().text);
        let Some(&(name, kind)) = self.fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(text)) else {
            let known: Vec<&str> = self.fields.iter().map(|(f, _)| *f).collect();
            return Err(err(self.src, at, format!("unknown field {text:?}; known fields: {}", known.join(", "))));
        };
        self.bump();
        let field: Box<str> = name.into();
        let op_tok = self.peek();
        let (op_at, op_text) = (op_tok.at, op_tok.text);
        let op = match op_tok.tok {
            Tok::Op(op) => Some(op),
            Tok::In | Tok::Has => None,
            _ if kind == FieldKind::Bool => return self.node(Node::Bool { field, value: true, negate: false }),
            _ => return Err(self.error_here(&format!("expected an operator after {name:?} ({})", usage(kind)))),
        };
        let fits = match (kind, &op_tok.tok) {
            (FieldKind::Bool, Tok::Op(o)) => matches!(o, Op::Eq | Op::Ne),
            (FieldKind::Num, Tok::Op(_) | Tok::In) => true,
            (FieldKind::Str | FieldKind::Path, Tok::Op(o)) => matches!(o, Op::Eq | Op::Ne),
            (FieldKind::Str | FieldKind::Path, Tok::In) => true,
            (FieldKind::List, Tok::Has) => true,
            _ => false,
        };
        if !fits {
            return Err(err(self.src, op_at, format!("{op_text:?} does not apply to {name} ({})", usage(kind))));
        }
        self.bump();
        let vals = if op.is_some() || kind == FieldKind::List {
            vec![self.value(kind, op_text)?]
        } else {
            if !self.eat(Tok::LBracket) {
                return Err(self.error_here("expected \"[\" after \"in\""));
            }
            let mut vals = Vec::new();
            while !self.eat(Tok::RBracket) {
                vals.push(self.value(kind, if vals.is_empty() { "[" } else { "," })?);
                if !self.eat(Tok::Comma) && self.peek().tok != Tok::RBracket {
                    return Err(self.error_here("expected \",\" or \"]\""));
                }
            }
            vals
        };
        let negate = op == Some(Op::Ne);
        let strs = || vals.iter().filter_map(|v| if let Tok::Str(s) = v { Some(s.as_str()) } else { None });
        let node = match kind {
            FieldKind::Bool => Node::Bool { field, value: vals.first() == Some(&Tok::True), negate },
            FieldKind::Num => Node::Num {
                field,
                op: op.unwrap_or(Op::Eq),
                values: vals.iter().filter_map(|v| if let Tok::Num(n) = v { Some(*n) } else { None }).collect(),
            },
            FieldKind::Str => Node::Str { field, values: strs().map(Into::into).collect(), negate },
            FieldKind::Path => {
                Node::Path { field, paths: strs().map(|s| self.path(s)).collect::<Result<_, _>>()?, negate }
            }
            FieldKind::List => Node::Has { field, value: strs().next().unwrap_or_default().into() },
        };
        self.node(node)
    }

    /// The literal after `after`, of the kind the field takes (a string for `Str`, `Path`, `List`).
    fn value(&mut self, kind: FieldKind, after: &str) -> Result<Tok, ExprError> {
        let t = self.peek();
        let ok = match kind {
            FieldKind::Num => matches!(t.tok, Tok::Num(_)),
            FieldKind::Bool => matches!(t.tok, Tok::True | Tok::False),
            _ => matches!(t.tok, Tok::Str(_)),
        };
        if ok {
            return Ok(self.bump().tok.clone());
        }
        let want = match kind {
            FieldKind::Num => "a number",
            FieldKind::Bool => "true or false",
            _ => "a quoted string",
        };
        let what = if matches!(t.tok, Tok::Num(_) | Tok::Str(_) | Tok::True | Tok::False) { want } else { "a value" };
        Err(self.error_here(&format!("expected {what} after {after:?}")))
    }

    fn path(&self, s: &str) -> Result<Vec<Box<str>>, ExprError> {
        let segs: Vec<Box<str>> = segments(s).map(Into::into).collect();
        if segs.is_empty() {
            let at = self.toks[self.i.saturating_sub(1)].at;
            return Err(err(self.src, at, "an empty category path matches everything; leave the condition out"));
        }
        Ok(segs)
    }
}

fn describe(t: &Token) -> String {
    if t.tok == Tok::End {
        return "the end".to_owned();
    }
    let text: String = t.text.chars().take(24).collect();
    format!("{text:?}")
}

fn usage(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Bool => "a true/false field: use it on its own, with not, or with = / != true or false",
        FieldKind::Num => "a number field: use =, !=, <, <=, >, >= or in [...]",
        FieldKind::Str => "a text field: use =, != or in [...]",
        FieldKind::Path => "a category path: use = (path prefix), != or in [...]",
        FieldKind::List => "a list field: use has \"...\"",
    }
}

/// What a business rule does to the products its expression matches.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// Multiply the score by `factor` (finite, > 0); the list is then re-sorted by score.
    Boost { factor: f32 },
    /// Move to the end of the list, keeping the buried products' relative order.
    Bury,
    /// Put the best-ranked matching product at 1-based `position` (beyond the end: last).
    Pin { position: usize },
}

/// One business rule as configured: `{"id": "…", "when": "<expression>", "action": {"type": …}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessRule {
    pub id: String,
    /// An expression (see the module docs) over the fields given to [`BusinessRules::parse`].
    pub when: String,
    pub action: RuleAction,
    /// Placements the rule applies to; empty means every placement.
    #[serde(default)]
    pub placements: Vec<String>,
}

/// What can be wrong with a business-rules file.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("business rules: {0}")]
    Json(#[from] serde_json::Error),
    #[error("business rule {rule:?}: {source}")]
    Expr { rule: String, source: ExprError },
    #[error("business rule {rule:?}: {reason}")]
    Invalid { rule: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    version: Option<String>,
    rules: Vec<BusinessRule>,
}

/// Business rules compiled once (`{"version": "…", "rules": [ … ]}`), applied per request with
/// [`BusinessRules::apply`] after the safety layer: they reorder the safe list, never add to it.
#[derive(Debug, Clone)]
pub struct BusinessRules {
    version: Option<String>,
    rules: Vec<(BusinessRule, Expr)>,
}

impl BusinessRules {
    /// Parses and checks every rule: expressions, unique non-empty ids, boost factors finite and
    /// above 0, pin positions from 1.
    pub fn parse(json: &str, fields: &[(&str, FieldKind)]) -> Result<Self, RulesError> {
        let file: RulesFile = serde_json::from_str(json)?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for rule in file.rules {
            let invalid = |reason: &str| RulesError::Invalid { rule: rule.id.clone(), reason: reason.to_owned() };
            if rule.id.trim().is_empty() {
                return Err(invalid("an empty id"));
            }
            if rules.iter().any(|(r, _): &(BusinessRule, Expr)| r.id == rule.id) {
                return Err(invalid("the id is used twice"));
            }
            match rule.action {
                RuleAction::Boost { factor } if !(factor.is_finite() && factor > 0.0) => {
                    return Err(invalid("a boost factor must be a finite number above 0"));
                }
                RuleAction::Pin { position: 0 } => return Err(invalid("pin positions start at 1")),
                _ => {}
            }
            let expr =
                parse(&rule.when, fields).map_err(|source| RulesError::Expr { rule: rule.id.clone(), source })?;
            rules.push((rule, expr));
        }
        Ok(BusinessRules { version: file.version, rules })
    }

    /// The file's `version`, if it has one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The rules in file order.
    pub fn rules(&self) -> impl Iterator<Item = &BusinessRule> {
        self.rules.iter().map(|(r, _)| r)
    }

    /// Reorders a ranked list for `placement` (`None`: only rules without placements apply), in
    /// this order: boosts multiply the scores of matching items (several multiply) and, if any
    /// matched, the list is stably re-sorted by score, highest first (NaN last); buried items move
    /// to the end in their order; each pin rule, in file order, takes the best-ranked matching item
    /// not already pinned to its position, or the next free one after it if an earlier pin has it
    /// (beyond the end, or no free slot after: the end, in rule order). A pin overrides a bury.
    /// The slice keeps exactly its items: only their order and scores change.
    ///
    /// `attrs` borrows from the item, so items must own or reference their attributes (a
    /// `Vec<(&Facts, f32)>` works); with attributes in a side table use [`BusinessRules::apply_with`].
    pub fn apply<T>(
        &self,
        placement: Option<&str>,
        items: &mut [T],
        score: impl Fn(&T) -> f32,
        set_score: impl FnMut(&mut T, f32),
        attrs: impl Fn(&T) -> &dyn Attributes,
    ) {
        self.apply_with(placement, items, score, set_score, |t, e| e.eval(attrs(t)))
    }

    /// [`BusinessRules::apply`] with the matching left to the caller: `matches(item, expr)` is
    /// typically `expr.eval(&table[item.index])`.
    pub fn apply_with<T>(
        &self,
        placement: Option<&str>,
        items: &mut [T],
        score: impl Fn(&T) -> f32,
        mut set_score: impl FnMut(&mut T, f32),
        matches: impl Fn(&T, &Expr) -> bool,
    ) {
        let active: Vec<&(BusinessRule, Expr)> = self
            .rules
            .iter()
            .filter(|(r, _)| r.placements.is_empty() || placement.is_some_and(|p| r.placements.iter().any(|q| q == p)))
            .collect();
        let n = items.len();
        if active.is_empty() || n == 0 {
            return;
        }
        let mut boosted = false;
        let mut buried = vec![false; n];
        for (i, item) in items.iter_mut().enumerate() {
            let mut factor = 1.0f32;
            let mut hit = false;
            for (rule, expr) in &active {
                match rule.action {
                    RuleAction::Boost { factor: f } if matches(item, expr) => {
                        factor *= f;
                        hit = true;
                    }
                    RuleAction::Bury if !buried[i] => buried[i] = matches(item, expr),
                    _ => {}
                }
            }
            if hit {
                let s = score(item) * factor;
                set_score(item, s);
                boosted = true;
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        if boosted {
            let keys: Vec<f32> =
                items.iter().map(&score).map(|s| if s.is_nan() { f32::NEG_INFINITY } else { s }).collect();
            order.sort_by(|&i, &j| keys[j].total_cmp(&keys[i]));
        }
        // Stable partition: unburied first, then buried, each in ranked order.
        let (mut ranked, sunk): (Vec<usize>, Vec<usize>) = order.into_iter().partition(|&i| !buried[i]);
        ranked.extend(sunk);

        let mut slots: Vec<Option<usize>> = vec![None; n];
        let mut pinned = vec![false; n];
        let mut at_end = Vec::new();
        for (rule, expr) in &active {
            let RuleAction::Pin { position } = rule.action else { continue };
            let Some(&item) = ranked.iter().find(|&&i| !pinned[i] && matches(&items[i], expr)) else { continue };
            pinned[item] = true;
            match (position.saturating_sub(1)..n).find(|&s| slots[s].is_none()) {
                Some(s) if position <= n => slots[s] = Some(item),
                _ => at_end.push(item),
            }
        }
        // End pins take the last free slots in rule order, then the rest fill the gaps in order.
        let mut free: Vec<usize> = (0..n).filter(|&s| slots[s].is_none()).collect();
        for (&slot, &item) in free[free.len() - at_end.len()..].iter().zip(&at_end) {
            slots[slot] = Some(item);
        }
        free.truncate(free.len() - at_end.len());
        for (slot, item) in free.into_iter().zip(ranked.into_iter().filter(|&i| !pinned[i])) {
            slots[slot] = Some(item);
        }
        let order: Vec<usize> = slots.into_iter().map(|s| s.unwrap_or_default()).collect();
        permute(items, &order);
    }
}

/// Rearranges `items` so that position `k` holds what was at `order[k]` (a permutation), by swaps.
fn permute<T>(items: &mut [T], order: &[usize]) {
    let mut done = vec![false; items.len()];
    for start in 0..items.len() {
        let mut cur = start;
        while !done[cur] {
            done[cur] = true;
            let src = order[cur];
            if src == start {
                break;
            }
            items.swap(cur, src);
            cur = src;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const FIELDS: &[(&str, FieldKind)] = &[
        ("category", FieldKind::Path),
        ("brand", FieldKind::Str),
        ("price", FieldKind::Num),
        ("concerns", FieldKind::List),
        ("fragrance_free", FieldKind::Bool),
        ("id", FieldKind::Str),
    ];

    #[derive(Debug, Clone, PartialEq)]
    enum Owned {
        B(bool),
        N(f64),
        S(String),
        L(Vec<String>),
    }

    #[derive(Debug, Clone, Default, PartialEq)]
    struct Facts(HashMap<&'static str, Owned>);

    impl Attributes for Facts {
        fn get(&self, field: &str) -> Value<'_> {
            match self.0.get(field) {
                None => Value::Missing,
                Some(Owned::B(b)) => Value::Bool(*b),
                Some(Owned::N(n)) => Value::Num(*n),
                Some(Owned::S(s)) => Value::Str(s),
                Some(Owned::L(l)) => Value::List(l),
            }
        }
    }

    fn cream() -> Facts {
        let mut m = HashMap::new();
        m.insert("category", Owned::S("Skincare/Moisturizers/Face Creams".into()));
        m.insert("brand", Owned::S("CeraVe".into()));
        m.insert("price", Owned::N(18.5));
        m.insert("concerns", Owned::L(vec!["Acne".into(), "dryness".into()]));
        m.insert("fragrance_free", Owned::B(true));
        Facts(m)
    }

    fn eval(src: &str, f: &Facts) -> bool {
        parse(src, FIELDS).unwrap_or_else(|e| panic!("{src}: {e}")).eval(f)
    }

    fn error(src: &str) -> String {
        parse(src, FIELDS).map(|_| ()).expect_err(src).to_string()
    }

    #[test]
    fn operators_on_a_product() {
        let p = cream();
        let table: &[(&str, bool)] = &[
            ("price = 18.5", true),
            ("price == 18.5", true),
            ("price != 18.5", false),
            ("price < 18.5", false),
            ("price <= 18.5", true),
            ("price > 18", true),
            ("price >= 19", false),
            ("price > -1", true),
            ("price in [10, 18.5]", true),
            ("price in [10, 20,]", false),
            ("brand = 'cerave'", true),
            ("BRAND = \"CERAVE\"", true),
            ("brand != \"X\"", true),
            ("brand in [\"La Roche\", 'CeraVe']", true),
            ("brand in []", false),
            ("concerns has \"acne\"", true),
            ("concerns has 'DRYNESS'", true),
            ("concerns has 'redness'", false),
            ("fragrance_free", true),
            ("!fragrance_free", false),
            ("fragrance_free = false", false),
            ("fragrance_free != false", true),
            ("true", true),
            ("FALSE", false),
            ("not price > 100", true),
            ("price < 10 || brand = 'cerave'", true),
            ("price < 10 OR brand = 'x'", false),
            ("price > 10 && fragrance_free AND brand = 'CeraVe'", true),
            (
                "category = \"Skincare/Moisturizers\" and price <= 40 and (concerns has \"acne\" or fragrance_free) and brand != \"X\"",
                true,
            ),
        ];
        for (src, want) in table {
            assert_eq!(eval(src, &p), *want, "{src}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let p = cream();
        // true or (true and false) = true; (true or true) and false would be false.
        assert!(eval("fragrance_free or price > 1 and price > 100", &p));
        assert!(!eval("(fragrance_free or price > 1) and price > 100", &p));
        // not binds tighter than and.
        assert!(!eval("not fragrance_free and price > 1", &p));
        assert!(eval("not (fragrance_free and price > 100)", &p));
    }

    #[test]
    fn category_is_a_prefix_match_by_segments() {
        let p = cream();
        for (src, want) in [
            ("category = 'Skincare'", true),
            ("category = 'skincare / moisturizers'", true),
            ("category = 'Skincare/Moisturizers/Face Creams'", true),
            ("category = 'Skincare/Moisturizers/Face Creams/Night'", false),
            ("category = 'Skin'", false),
            ("category = 'Moisturizers'", false),
            ("category != 'Makeup'", true),
            ("category in ['Makeup', 'skincare/moisturizers']", true),
        ] {
            assert_eq!(eval(src, &p), want, "{src}");
        }
        let mut tools = Facts::default();
        tools.0.insert("category", Owned::S("Skincare Tools".into()));
        assert!(!eval("category = 'Skincare'", &tools));
        assert!(error("category = '/'").contains("empty category path"));
    }

    #[test]
    fn missing_values_fail_every_comparison_but_not_equal() {
        let empty = Facts::default();
        for src in [
            "price = 1",
            "price < 1",
            "price >= 1",
            "price in [1]",
            "brand = 'x'",
            "brand in ['x']",
            "category = 'Skincare'",
            "concerns has 'acne'",
            "fragrance_free",
            "fragrance_free = false",
        ] {
            assert!(!eval(src, &empty), "{src}");
        }
        for src in [
            "price != 1",
            "brand != 'x'",
            "category != 'Skincare'",
            "not (price = 1)",
            "not fragrance_free",
            "fragrance_free != true",
        ] {
            assert!(eval(src, &empty), "{src}");
        }
        // A value of the wrong kind counts as missing.
        let mut odd = Facts::default();
        odd.0.insert("price", Owned::S("cheap".into()));
        assert!(!eval("price < 100", &odd));
        assert!(eval("price != 100", &odd));
    }

    #[test]
    fn errors_name_the_position_and_the_problem() {
        let known = "known fields: category, brand, price, concerns, fragrance_free, id";
        assert_eq!(error("prce < 3"), format!("at 1: unknown field \"prce\"; {known}"));
        assert_eq!(error("price <= "), "at 10: expected a value after \"<=\", found the end");
        assert_eq!(error("price <= 'x'"), "at 10: expected a number after \"<=\", found \"'x'\"");
        assert!(error("price has \"x\"").starts_with("at 7: \"has\" does not apply to price (a number field"));
        assert!(error("concerns = 'acne'").starts_with("at 10: \"=\" does not apply to concerns (a list field"));
        assert!(error("brand < 'b'").starts_with("at 7: \"<\" does not apply to brand"));
        assert!(error("fragrance_free in [true]").starts_with("at 16: \"in\" does not apply"));
        assert_eq!(error("brand = \"cera"), "at 9: unterminated string: no closing \"");
        assert_eq!(error("price < 3 brand"), "at 11: expected \"and\", \"or\" or the end, found \"brand\"");
        assert_eq!(error("(price < 3"), "at 11: expected \")\" to close the \"(\" at 1, found the end");
        assert_eq!(
            error("price"),
            "at 6: expected an operator after \"price\" (a number field: use =, !=, <, <=, >, >= or in [...]), found the end"
        );
        assert_eq!(error("price in [1 2]"), "at 13: expected \",\" or \"]\", found \"2\"");
        assert_eq!(error("price < 3 & x"), "at 11: expected \"&&\"");
        assert_eq!(error("brand = @"), "at 9: unexpected character \"@\"");
        assert_eq!(error("price < 1.2.3"), "at 9: \"1.2.3\" is not a number");
        assert_eq!(error(""), "at 1: expected a field, \"(\", \"not\", true or false, found the end");
        // Positions count characters, not bytes.
        assert_eq!(error("brand = 'é' and"), "at 16: expected a field, \"(\", \"not\", true or false, found the end");
    }

    #[test]
    fn hostile_input_is_refused_not_crashed() {
        let deep = format!("{}fragrance_free{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(error(&deep), "at 33: nested deeper than 32 levels");
        assert_eq!(error(&"not ".repeat(500)), "at 129: nested deeper than 32 levels");
        assert!(parse(&format!("{}fragrance_free{}", "(".repeat(32), ")".repeat(32)), FIELDS).is_ok());
        assert_eq!(error(&"!".repeat(2001)), "at 2001: longer than 2000 characters");
        assert!(error(&"(".repeat(1_000_000)).contains("longer than 2000"));
        assert!(error(&"true||".repeat(300)).contains("more than 256 conditions"));
        assert!(parse("true||".repeat(200).trim_end_matches('|'), FIELDS).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s, FIELDS);
        }

        #[test]
        fn parsing_token_soup_never_panics(toks in prop::collection::vec(prop::sample::select(vec![
            "(", ")", "[", "]", ",", "not", "!", "and", "&&", "or", "||", "in", "has", "true", "false", "price",
            "brand", "category", "concerns", "fragrance_free", "=", "!=", "<", "<=", ">", ">=", "3", "-2.5",
            "'acne'", "\"Skincare/\"", "'", "\"", "\\", "é", "nope",
        ]), 0..80)) {
            let src = toks.join(" ");
            if let Ok(e) = parse(&src, FIELDS) {
                let _ = e.eval(&cream());
                let _ = e.eval(&Facts::default());
            }
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Item {
        facts: Facts,
        score: f32,
    }

    fn item(id: &str, brand: &str, score: f32) -> Item {
        let mut m = HashMap::new();
        m.insert("id", Owned::S(id.into()));
        m.insert("brand", Owned::S(brand.into()));
        Item { facts: Facts(m), score }
    }

    fn ids(items: &[Item]) -> Vec<String> {
        items.iter().map(|i| if let Value::Str(s) = i.facts.get("id") { s.to_owned() } else { String::new() }).collect()
    }

    fn run(rules: &str, placement: Option<&str>, items: &mut [Item]) {
        let json = format!("{{\"version\": \"t1\", \"rules\": {rules}}}");
        let rules = BusinessRules::parse(&json, FIELDS).unwrap();
        rules.apply(placement, items, |i| i.score, |i, s| i.score = s, |i| &i.facts);
    }

    /// a..f by descending score 10..5; b, d, f are brand X.
    fn list() -> Vec<Item> {
        ["a", "b", "c", "d", "e", "f"]
            .iter()
            .enumerate()
            .map(|(k, id)| item(id, if k % 2 == 1 { "X" } else { "Y" }, 10.0 - k as f32))
            .collect()
    }

    #[test]
    fn boost_rescales_and_resorts_stably() {
        let mut items = list();
        run(r#"[{"id": "x", "when": "brand = 'x'", "action": {"type": "boost", "factor": 1.5}}]"#, None, &mut items);
        // b 13.5, d 10.5 (passes a at 10), a 10, c 8, f 7.5 (passes e at 6), e.
        assert_eq!(ids(&items), ["b", "d", "a", "c", "f", "e"]);
        assert_eq!(items[0].score, 13.5);
        assert_eq!(items[2].score, 10.0, "unmatched scores are left alone");
        // A tie keeps the earlier item first: f boosted to 10 stays behind a at 10.
        let mut items = list();
        run(r#"[{"id": "f", "when": "id = 'f'", "action": {"type": "boost", "factor": 2}}]"#, None, &mut items);
        assert_eq!(ids(&items), ["a", "f", "b", "c", "d", "e"]);
    }

    #[test]
    fn bury_moves_to_the_end_in_order() {
        let mut items = list();
        run(r#"[{"id": "x", "when": "brand = 'X'", "action": {"type": "bury"}}]"#, None, &mut items);
        assert_eq!(ids(&items), ["a", "c", "e", "b", "d", "f"]);
        assert_eq!(items[3].score, 9.0, "bury leaves scores alone");
    }

    #[test]
    fn pins_take_their_positions_in_rule_order() {
        let mut items = list();
        let rules = r#"[
            {"id": "p1", "when": "id = 'e'", "action": {"type": "pin", "position": 1}},
            {"id": "p2", "when": "id = 'f'", "action": {"type": "pin", "position": 1}},
            {"id": "p3", "when": "brand = 'x'", "action": {"type": "pin", "position": 4}},
            {"id": "far", "when": "id = 'a'", "action": {"type": "pin", "position": 99}},
            {"id": "none", "when": "id = 'zzz'", "action": {"type": "pin", "position": 2}},
            {"id": "sink", "when": "id = 'e'", "action": {"type": "bury"}}
        ]"#;
        run(rules, None, &mut items);
        // e at 1 (pin beats bury), f wanted 1 → next free 2, b (best-ranked X) at 4, a beyond the end → last.
        assert_eq!(ids(&items), ["e", "f", "c", "b", "d", "a"]);
    }

    #[test]
    fn attributes_can_live_outside_the_items() {
        let table = list();
        let mut items: Vec<(usize, f32)> = (0..table.len()).map(|i| (i, table[i].score)).collect();
        let rules = BusinessRules::parse(
            r#"{"rules": [{"id": "x", "when": "brand = 'X'", "action": {"type": "bury"}}]}"#,
            FIELDS,
        )
        .unwrap();
        rules.apply_with(None, &mut items, |i| i.1, |i, s| i.1 = s, |i, e| e.eval(&table[i.0].facts));
        assert_eq!(items.iter().map(|i| i.0).collect::<Vec<_>>(), [0, 2, 4, 1, 3, 5]);
    }

    #[test]
    fn placements_scope_rules() {
        let rules = r#"[{"id": "x", "when": "brand = 'X'", "action": {"type": "bury"}, "placements": ["pdp"]}]"#;
        for (placement, want) in [(None, "abcdef"), (Some("home"), "abcdef"), (Some("pdp"), "acebdf")] {
            let mut items = list();
            run(rules, placement, &mut items);
            assert_eq!(ids(&items).concat(), want, "{placement:?}");
        }
    }

    #[test]
    fn rules_never_add_or_drop_items() {
        let rules = r#"[
            {"id": "b", "when": "brand = 'Y'", "action": {"type": "boost", "factor": 3}},
            {"id": "s", "when": "id in ['a', 'f']", "action": {"type": "bury"}},
            {"id": "p", "when": "brand = 'X'", "action": {"type": "pin", "position": 2}},
            {"id": "q", "when": "brand = 'X'", "action": {"type": "pin", "position": 2}},
            {"id": "r", "when": "true", "action": {"type": "pin", "position": 7}}
        ]"#;
        let mut items = list();
        run(rules, None, &mut items);
        let mut got = ids(&items);
        got.sort();
        assert_eq!(got, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(&ids(&items)[1..3], ["b", "d"]);
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_id() {
        let bad = |rules: &str| {
            BusinessRules::parse(&format!("{{\"rules\": {rules}}}"), FIELDS).map(|_| ()).unwrap_err().to_string()
        };
        assert_eq!(
            bad(r#"[{"id": "r1", "when": "price <", "action": {"type": "bury"}}]"#),
            "business rule \"r1\": at 8: expected a value after \"<\", found the end"
        );
        assert!(bad(r#"[{"id": "r", "when": "true", "action": {"type": "boost", "factor": -1}}]"#).contains("above 0"));
        assert!(
            bad(r#"[{"id": "r", "when": "true", "action": {"type": "pin", "position": 0}}]"#).contains("start at 1")
        );
        assert!(bad(r#"[{"id": "r", "when": "true", "action": {"type": "bury"}}, {"id": "r", "when": "true", "action": {"type": "bury"}}]"#).contains("used twice"));
        assert!(bad(r#"[{"id": "r", "when": "true", "action": {"type": "shuffle"}}]"#).starts_with("business rules:"));
    }
}
