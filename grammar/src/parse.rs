//! From source text to the spanned AST.

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;

use crate::ast::*;
use crate::diag::{Diagnostic, Source};

#[derive(pest_derive::Parser)]
#[grammar = "protodsl.pest"]
struct DslParser;

/// Deepest nesting of brackets accepted. pest recurses on nested input without a limit
/// (pest #1129), so deeper input is refused before it reaches the parser.
pub const MAX_NESTING: usize = 64;

/// Parses one file.
pub fn parse(source: &Source) -> Result<File, Diagnostic> {
    check_nesting(source)?;
    let mut pairs =
        DslParser::parse(Rule::file, &source.text).map_err(|e| syntax_error(source, e))?;
    let file = pairs.next().expect("pest returns the file rule on success");
    Ok(Lower.file(file))
}

fn check_nesting(source: &Source) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    let bytes = source.text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' | b'<' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(
                        source,
                        Span::new(i, i + 1),
                        format!("nesting deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            b')' | b']' | b'}' | b'>' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn rule_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::ident | Rule::field_name => "a name",
        Rule::path | Rule::named_type | Rule::base_type | Rule::type_expr | Rule::sized_type => {
            "a type"
        }
        Rule::dotted => "a field name",
        Rule::int_lit | Rule::signed_int => "an integer",
        Rule::string_lit => "a string",
        Rule::expr | Rule::primary | Rule::paren | Rule::call => "an expression",
        Rule::infix
        | Rule::or
        | Rule::and
        | Rule::eq
        | Rule::ne
        | Rule::le
        | Rule::ge
        | Rule::lt
        | Rule::gt
        | Rule::shl
        | Rule::shr
        | Rule::bor
        | Rule::bxor
        | Rule::band
        | Rule::add
        | Rule::sub
        | Rule::mul
        | Rule::div
        | Rule::rem => "an operator",
        Rule::member => "`.`",
        Rule::role => "a role (`@length(...)`)",
        Rule::role_arg | Rule::role_value => "a role argument",
        Rule::condition | Rule::kw_if => "`if`",
        Rule::within | Rule::kw_within => "`within`",
        Rule::decoded_from | Rule::kw_from => "`from`",
        Rule::const_value => "`=`",
        Rule::size_suffix => "`[`",
        Rule::until_clause | Rule::kw_until => "`until`",
        Rule::item => "an item (`unit`, `enum`, `const`, `import`, `framing`, ...)",
        Rule::unit_stmt => "a field",
        Rule::field => "a field",
        Rule::protocol_decl | Rule::kw_protocol => "`protocol NAME;`",
        Rule::doc => "a doc comment",
        Rule::unit_kind => "`:`",
        Rule::params => "`(`",
        Rule::args => "`(`",
        Rule::unit_body => "`{`",
        Rule::order | Rule::big | Rule::little => "`big` or `little`",
        Rule::switch_case | Rule::patterns | Rule::pattern | Rule::pattern_elem => "a switch case",
        Rule::enum_item => "an enum variant",
        _ => "something else",
    }
}

fn syntax_error(source: &Source, e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let span = match e.location {
        InputLocation::Pos(p) => Span::new(p, p + 1),
        InputLocation::Span((a, b)) => Span::new(a, b.max(a + 1)),
    };
    let message = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().map(rule_name).collect();
            names.dedup();
            names.sort_unstable();
            names.dedup();
            let found = source.text[span.start.min(source.text.len())..]
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("");
            let found = if found.is_empty() {
                "end of file".to_string()
            } else {
                format!("`{}`", found.chars().take(20).collect::<String>())
            };
            match names.len() {
                0 => format!("unexpected {found}"),
                1 => format!("expected {}, found {found}", names[0]),
                _ => {
                    let (last, rest) = names.split_last().expect("two or more names");
                    format!("expected {} or {last}, found {found}", rest.join(", "))
                }
            }
        }
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let d = Diagnostic::new(source, span, message);
    if source.text[..span.start.min(source.text.len())]
        .trim_end()
        .ends_with(|c: char| c.is_alphanumeric() || c == ')' || c == ']')
    {
        d.with_hint("is a `;` missing at the end of the previous line?")
    } else {
        d
    }
}

struct Lower;

fn span_of(p: &Pair<'_, Rule>) -> Span {
    Span::new(p.as_span().start(), p.as_span().end())
}

impl Lower {
    fn ident(&self, p: Pair<'_, Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: span_of(&p),
        }
    }

    fn docs<'i>(
        &self,
        inner: &mut std::iter::Peekable<impl Iterator<Item = Pair<'i, Rule>>>,
    ) -> Vec<String> {
        let mut docs = Vec::new();
        while let Some(p) = inner.peek() {
            if p.as_rule() != Rule::doc {
                break;
            }
            let p = inner.next().expect("peeked");
            let text = p.into_inner().next().map_or("", |t| t.as_str());
            docs.push(
                text.strip_prefix(' ')
                    .unwrap_or(text)
                    .trim_end()
                    .to_string(),
            );
        }
        docs
    }

    fn file(&self, p: Pair<'_, Rule>) -> File {
        let mut inner = p.into_inner().peekable();
        let docs = self.docs(&mut inner);
        let decl = inner.next().expect("protocol_decl");
        let protocol = self.ident(decl.into_inner().nth(1).expect("protocol name"));
        let items = inner
            .filter(|p| p.as_rule() == Rule::item)
            .map(|p| self.item(p))
            .collect();
        File {
            docs,
            protocol,
            items,
        }
    }

    fn item(&self, p: Pair<'_, Rule>) -> Item {
        let span = span_of(&p);
        let mut inner = p.into_inner().peekable();
        let docs = self.docs(&mut inner);
        let p = inner.next().expect("item body");
        let kind = match p.as_rule() {
            Rule::import_decl => ItemKind::Import(self.ident(p.into_inner().nth(1).expect("name"))),
            Rule::default_order => {
                let o = p.into_inner().nth(1).expect("order");
                ItemKind::DefaultOrder(match o.as_rule() {
                    Rule::inherit => None,
                    _ => Some(self.order(o)),
                })
            }
            Rule::text_decl => {
                let mut it = p.into_inner().skip(2);
                let terminator = self.string(it.next().expect("terminator"));
                let it = it.nth(1).expect("max");
                ItemKind::Text {
                    terminator,
                    max: self.int(&it) as u64,
                }
            }
            Rule::const_def => {
                let mut it = p.into_inner().skip(1);
                ItemKind::Const {
                    name: self.ident(it.next().expect("name")),
                    value: self.expr(it.next().expect("value")),
                }
            }
            Rule::enum_def => {
                let mut it = p.into_inner();
                let is_flags = it.next().expect("kw").as_rule() == Rule::kw_flags;
                let name = self.ident(it.next().expect("name"));
                let repr = self.ident(it.next().expect("repr"));
                let variants = it
                    .map(|v| {
                        let span = span_of(&v);
                        let mut vi = v.into_inner().peekable();
                        let docs = self.docs(&mut vi);
                        let name = self.ident(vi.next().expect("variant name"));
                        let value = self.signed(vi.next().expect("variant value"));
                        EnumVariant {
                            docs,
                            name,
                            value,
                            span,
                        }
                    })
                    .collect();
                ItemKind::Enum(EnumDef {
                    is_flags,
                    name,
                    repr,
                    variants,
                })
            }
            Rule::unit_def => ItemKind::Unit(self.unit_def(p)),
            Rule::framing_def => {
                let mut it = p.into_inner().skip(1);
                let unit = self.path(it.next().expect("path"));
                let max = it.nth(1).map(|n| (self.int(&n), span_of(&n)));
                ItemKind::Framing(Framing { unit, max })
            }
            r => unreachable!("item {r:?}"),
        };
        Item { docs, kind, span }
    }

    fn order(&self, p: Pair<'_, Rule>) -> ByteOrder {
        let p = if p.as_rule() == Rule::order {
            p.into_inner().next().expect("big|little")
        } else {
            p
        };
        match p.as_rule() {
            Rule::big => ByteOrder::Big,
            _ => ByteOrder::Little,
        }
    }

    fn unit_def(&self, p: Pair<'_, Rule>) -> UnitDef {
        let mut it = p.into_inner().skip(1);
        let name = self.ident(it.next().expect("unit name"));
        let mut params = Vec::new();
        let mut kind = None;
        let mut body = Vec::new();
        for p in it {
            match p.as_rule() {
                Rule::params => {
                    for param in p.into_inner() {
                        let mut pi = param.into_inner();
                        params.push(Param {
                            name: self.ident(pi.next().expect("param name")),
                            ty: self.ident(pi.next().expect("param type")),
                        });
                    }
                }
                Rule::unit_kind => kind = Some(self.ident(p.into_inner().next().expect("kind"))),
                Rule::unit_body => body = self.body(p),
                r => unreachable!("unit part {r:?}"),
            }
        }
        UnitDef {
            name,
            params,
            kind,
            body,
        }
    }

    fn body(&self, p: Pair<'_, Rule>) -> Vec<Stmt> {
        p.into_inner().map(|s| self.stmt(s)).collect()
    }

    fn stmt(&self, p: Pair<'_, Rule>) -> Stmt {
        let mut inner = p.into_inner().peekable();
        let docs = self.docs(&mut inner);
        let p = inner.next().expect("statement");
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::anchor_stmt => {
                StmtKind::Anchor(self.ident(p.into_inner().nth(1).expect("anchor")))
            }
            Rule::align_stmt => {
                let mut it = p.into_inner().skip(1);
                let to = self.int(&it.next().expect("alignment")) as u64;
                let from = it.nth(1).map(|a| self.ident(a));
                StmtKind::Align { to, from }
            }
            Rule::byte_order_stmt => {
                let mut it = p.into_inner().skip(1);
                let order = self.order(it.next().expect("order"));
                let condition = match it.next() {
                    Some(_if) => {
                        let cond = self.expr(it.next().expect("condition"));
                        let other = self.order(it.nth(1).expect("else order"));
                        Some((cond, other))
                    }
                    None => None,
                };
                StmtKind::ByteOrder { order, condition }
            }
            Rule::field => StmtKind::Field(self.field(p)),
            r => unreachable!("statement {r:?}"),
        };
        Stmt { docs, kind, span }
    }

    fn field(&self, p: Pair<'_, Rule>) -> Field {
        let mut it = p.into_inner();
        let name_pair = it.next().expect("field name");
        let name_span = span_of(&name_pair);
        let name_inner = name_pair.into_inner().next().expect("name or _");
        let name = match name_inner.as_rule() {
            Rule::wildcard => None,
            _ => Some(self.ident(name_inner)),
        };
        let ty = self.type_expr(it.next().expect("type"));
        let mut field = Field {
            name,
            name_span,
            ty,
            value: None,
            condition: None,
            within: None,
            from: None,
            roles: Vec::new(),
        };
        for p in it {
            match p.as_rule() {
                Rule::const_value => {
                    field.value = Some(self.expr(p.into_inner().next().expect("value")))
                }
                Rule::condition => {
                    field.condition = Some(self.expr(p.into_inner().nth(1).expect("cond")))
                }
                Rule::within => {
                    field.within = Some(self.expr(p.into_inner().nth(1).expect("size")))
                }
                Rule::decoded_from => {
                    field.from = Some(self.expr(p.into_inner().nth(1).expect("source")))
                }
                Rule::role => field.roles.push(self.role(p)),
                r => unreachable!("field part {r:?}"),
            }
        }
        field
    }

    fn type_expr(&self, p: Pair<'_, Rule>) -> TypeExpr {
        let span = span_of(&p);
        let p = p.into_inner().next().expect("type");
        let kind = match p.as_rule() {
            Rule::switch_type => TypeKind::Switch(self.switch(p)),
            Rule::inline_unit => {
                let mut kind = None;
                let mut body = Vec::new();
                for q in p.into_inner().skip(1) {
                    match q.as_rule() {
                        Rule::unit_kind => {
                            kind = Some(self.ident(q.into_inner().next().expect("kind")))
                        }
                        Rule::unit_body => body = self.body(q),
                        r => unreachable!("inline unit part {r:?}"),
                    }
                }
                TypeKind::Inline { kind, body }
            }
            Rule::sized_type => {
                let mut it = p.into_inner();
                let base = self.base_type(it.next().expect("base"));
                let mut size = None;
                let mut until = None;
                for q in it {
                    match q.as_rule() {
                        Rule::size_suffix => {
                            size = Some(q.into_inner().next().map(|e| self.expr(e)))
                        }
                        Rule::until_clause => {
                            until = Some(self.expr(q.into_inner().nth(1).expect("until expr")))
                        }
                        r => unreachable!("sized part {r:?}"),
                    }
                }
                TypeKind::Sized { base, size, until }
            }
            r => unreachable!("type {r:?}"),
        };
        TypeExpr { kind, span }
    }

    fn base_type(&self, p: Pair<'_, Rule>) -> BaseType {
        let p = p.into_inner().next().expect("base type");
        match p.as_rule() {
            Rule::bytes_lit | Rule::string_lit => BaseType::Literal(self.string(p)),
            Rule::ci_string => BaseType::CiLiteral(self.string(p)),
            Rule::ptr_type => BaseType::Ptr(Box::new(
                self.type_expr(p.into_inner().nth(1).expect("pointee")),
            )),
            Rule::named_type => {
                let mut it = p.into_inner();
                let path = self.path(it.next().expect("path"));
                let args = it
                    .next()
                    .map(|a| a.into_inner().map(|e| self.expr(e)).collect())
                    .unwrap_or_default();
                BaseType::Named { path, args }
            }
            r => unreachable!("base type {r:?}"),
        }
    }

    fn switch(&self, p: Pair<'_, Rule>) -> Switch {
        let mut on = Vec::new();
        let mut cases = Vec::new();
        for q in p.into_inner().skip(1) {
            match q.as_rule() {
                Rule::expr => on.push(self.expr(q)),
                Rule::switch_case => {
                    let span = span_of(&q);
                    let mut patterns = Vec::new();
                    let mut name = None;
                    let mut ty = None;
                    for c in q.into_inner() {
                        match c.as_rule() {
                            Rule::patterns => {
                                patterns = c.into_inner().map(|p| self.pattern(p)).collect()
                            }
                            Rule::variant_name => {
                                name = Some(self.ident(c.into_inner().next().expect("name")))
                            }
                            Rule::case_type => {
                                let t = c.into_inner().next().expect("case type");
                                if t.as_rule() == Rule::type_expr {
                                    ty = Some(self.type_expr(t));
                                }
                            }
                            r => unreachable!("case part {r:?}"),
                        }
                    }
                    cases.push(SwitchCase {
                        patterns,
                        name,
                        ty,
                        span,
                    });
                }
                r => unreachable!("switch part {r:?}"),
            }
        }
        Switch { on, cases }
    }

    fn pattern(&self, p: Pair<'_, Rule>) -> Pattern {
        let span = span_of(&p);
        let elems = p
            .into_inner()
            .filter_map(|e| match e.as_rule() {
                Rule::wildcard => None,
                _ => Some(self.pattern_elem(e)),
            })
            .collect::<Vec<_>>();
        Pattern { elems, span }
    }

    fn pattern_elem(&self, p: Pair<'_, Rule>) -> PatternElem {
        let p = p.into_inner().next().expect("pattern element");
        match p.as_rule() {
            Rule::wildcard => PatternElem::Wildcard,
            Rule::ci_string => PatternElem::CiBytes(self.string(p)),
            Rule::string_lit | Rule::bytes_lit => PatternElem::Bytes(self.string(p)),
            Rule::char_lit => PatternElem::Int(self.char_value(p)),
            Rule::bool_lit => PatternElem::Bool(p.as_str() == "true"),
            Rule::signed_int => PatternElem::Int(self.signed(p)),
            Rule::path => PatternElem::Path(self.path(p)),
            r => unreachable!("pattern element {r:?}"),
        }
    }

    fn role(&self, p: Pair<'_, Rule>) -> Role {
        let span = span_of(&p);
        let mut it = p.into_inner();
        let name = self.ident(it.next().expect("role name"));
        let args = it
            .map(|a| {
                let span = span_of(&a);
                let mut ai = a.into_inner();
                let first = ai.next().expect("role arg");
                let (key, value) = match first.as_rule() {
                    Rule::role_key => (Some(self.ident(first)), ai.next().expect("value")),
                    _ => (None, first),
                };
                RoleArg {
                    key,
                    value: self.role_value(value),
                    span,
                }
            })
            .collect();
        Role { name, args, span }
    }

    fn role_value(&self, p: Pair<'_, Rule>) -> RoleValue {
        let p = p.into_inner().next().expect("role value");
        match p.as_rule() {
            Rule::signed_int => RoleValue::Int(self.signed(p)),
            Rule::string_lit => {
                RoleValue::Str(String::from_utf8_lossy(&self.string(p)).into_owned())
            }
            Rule::dotted => RoleValue::Dotted(self.dotted(p)),
            Rule::expr => RoleValue::Expr(self.expr(p)),
            Rule::field_range => {
                let mut it = p.into_inner();
                let a = self.dotted(it.next().expect("range start"));
                let b = self.dotted(it.next().expect("range end"));
                RoleValue::Range(a, b)
            }
            r => unreachable!("role value {r:?}"),
        }
    }

    fn dotted(&self, p: Pair<'_, Rule>) -> Vec<Ident> {
        p.into_inner().map(|i| self.ident(i)).collect()
    }

    fn path(&self, p: Pair<'_, Rule>) -> Path {
        let span = span_of(&p);
        let mut ids: Vec<Ident> = p.into_inner().map(|i| self.ident(i)).collect();
        let name = ids.pop().expect("path has a name");
        Path {
            protocol: ids.pop(),
            name,
            span,
        }
    }

    fn int(&self, p: &Pair<'_, Rule>) -> i128 {
        let s = p.as_str().replace('_', "");
        let parsed = if let Some(h) = s.strip_prefix("0x") {
            i128::from_str_radix(h, 16)
        } else if let Some(b) = s.strip_prefix("0b") {
            i128::from_str_radix(b, 2)
        } else {
            s.parse()
        };
        // Literals longer than 127 bits saturate; the compiler reports them as too wide.
        parsed.unwrap_or(i128::MAX)
    }

    fn signed(&self, p: Pair<'_, Rule>) -> i128 {
        let mut neg = false;
        let mut value = 0;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::neg_sign => neg = true,
                _ => value = self.int(&q),
            }
        }
        if neg {
            -value
        } else {
            value
        }
    }

    fn char_value(&self, p: Pair<'_, Rule>) -> i128 {
        let inner = p.into_inner().next().expect("char");
        unescape(inner.as_str()).first().copied().unwrap_or(0) as i128
    }

    fn string(&self, p: Pair<'_, Rule>) -> Vec<u8> {
        let inner = p.into_inner().next().map_or("", |i| i.as_str());
        unescape(inner)
    }

    fn expr(&self, p: Pair<'_, Rule>) -> Expr {
        let pratt = PrattParser::new()
            .op(Op::infix(Rule::or, Assoc::Left))
            .op(Op::infix(Rule::and, Assoc::Left))
            .op(Op::infix(Rule::eq, Assoc::Left)
                | Op::infix(Rule::ne, Assoc::Left)
                | Op::infix(Rule::lt, Assoc::Left)
                | Op::infix(Rule::le, Assoc::Left)
                | Op::infix(Rule::gt, Assoc::Left)
                | Op::infix(Rule::ge, Assoc::Left))
            .op(Op::infix(Rule::bor, Assoc::Left))
            .op(Op::infix(Rule::bxor, Assoc::Left))
            .op(Op::infix(Rule::band, Assoc::Left))
            .op(Op::infix(Rule::shl, Assoc::Left) | Op::infix(Rule::shr, Assoc::Left))
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::rem, Assoc::Left))
            .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
            .op(Op::postfix(Rule::member));
        self.pratt(&pratt, p)
    }

    fn pratt(&self, pratt: &PrattParser<Rule>, p: Pair<'_, Rule>) -> Expr {
        pratt
            .map_primary(|q| self.primary(pratt, q))
            .map_prefix(|op, rhs| {
                let span = Span::new(op.as_span().start(), rhs.span.end);
                let op = if op.as_rule() == Rule::neg {
                    UnOp::Neg
                } else {
                    UnOp::Not
                };
                Expr {
                    kind: ExprKind::Unary(op, Box::new(rhs)),
                    span,
                }
            })
            .map_postfix(|lhs, op| {
                let span = Span::new(lhs.span.start, op.as_span().end());
                let name = self.ident(op.into_inner().next().expect("member name"));
                Expr {
                    kind: ExprKind::Member(Box::new(lhs), name),
                    span,
                }
            })
            .map_infix(|lhs, op, rhs| {
                let span = Span::new(lhs.span.start, rhs.span.end);
                let op = match op.as_rule() {
                    Rule::or => BinOp::Or,
                    Rule::and => BinOp::And,
                    Rule::eq => BinOp::Eq,
                    Rule::ne => BinOp::Ne,
                    Rule::lt => BinOp::Lt,
                    Rule::le => BinOp::Le,
                    Rule::gt => BinOp::Gt,
                    Rule::ge => BinOp::Ge,
                    Rule::bor => BinOp::BitOr,
                    Rule::bxor => BinOp::BitXor,
                    Rule::band => BinOp::BitAnd,
                    Rule::shl => BinOp::Shl,
                    Rule::shr => BinOp::Shr,
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    Rule::div => BinOp::Div,
                    _ => BinOp::Rem,
                };
                Expr {
                    kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                    span,
                }
            })
            .parse(p.into_inner())
    }

    fn primary(&self, pratt: &PrattParser<Rule>, p: Pair<'_, Rule>) -> Expr {
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::int_lit => ExprKind::Int(self.int(&p)),
            Rule::char_lit => ExprKind::Int(self.char_value(p)),
            Rule::bool_lit => ExprKind::Bool(p.as_str() == "true"),
            Rule::bytes_lit | Rule::string_lit => ExprKind::Bytes(self.string(p)),
            Rule::ci_string => ExprKind::CiBytes(self.string(p)),
            Rule::path => ExprKind::Path(self.path(p)),
            Rule::paren => return self.pratt(pratt, p.into_inner().next().expect("inner expr")),
            Rule::call => {
                let mut it = p.into_inner();
                let name = self.ident(it.next().expect("function"));
                ExprKind::Call(name, it.map(|e| self.pratt(pratt, e)).collect())
            }
            r => unreachable!("primary {r:?}"),
        };
        Expr { kind, span }
    }
}

/// Resolves the escapes of a string literal (the grammar admits only valid ones).
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let (byte, used) = match b[i + 1] {
                b'n' => (b'\n', 2),
                b'r' => (b'\r', 2),
                b't' => (b'\t', 2),
                b'0' => (0, 2),
                b'x' if i + 3 < b.len() + 1 => {
                    let hex = std::str::from_utf8(&b[i + 2..(i + 4).min(b.len())]).unwrap_or("0");
                    (u8::from_str_radix(hex, 16).unwrap_or(0), 4)
                }
                other => (other, 2),
            };
            out.push(byte);
            i += used;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
