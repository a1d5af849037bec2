//! The spanned syntax tree of one `.proto-dsl` file.
//!
//! Every node that a diagnostic can point at carries a [`Span`] (byte offsets into the file's
//! source). Names are not resolved here: `u16`, `bytes` and `smb::Message` are all [`Path`]s;
//! the compiler decides what they mean.

use std::fmt;

/// A byte range in the source of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A name with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// `name` or `protocol::name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub protocol: Option<Ident>,
    pub name: Ident,
    pub span: Span,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.protocol {
            Some(p) => write!(f, "{}::{}", p, self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    Big,
    Little,
}

/// One parsed file.
#[derive(Debug, Clone)]
pub struct File {
    pub docs: Vec<String>,
    pub protocol: Ident,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub docs: Vec<String>,
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ItemKind {
    /// `import ndr;`
    Import(Ident),
    /// `byte_order little;` (`None`: `byte_order inherit;`)
    DefaultOrder(Option<ByteOrder>),
    /// `text line "\r\n" max 4096;`
    Text {
        terminator: Vec<u8>,
        max: u64,
    },
    /// `const NAME = expr;`
    Const {
        name: Ident,
        value: Expr,
    },
    Enum(EnumDef),
    Unit(UnitDef),
    /// `framing Session;`, `framing Session max 0x20003;`
    Framing(Framing),
}

/// A unit that frames a TCP stream, with the largest frame it allows (header included).
#[derive(Debug, Clone)]
pub struct Framing {
    pub unit: Path,
    /// `max N`: the value (saturated past 127 bits) and where it was written.
    pub max: Option<(i128, Span)>,
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    /// `flags` rather than `enum`: values are bit masks, combinations are normal.
    pub is_flags: bool,
    pub name: Ident,
    pub repr: Ident,
    pub variants: Vec<EnumVariant>,
}

#[derive(Debug, Clone)]
pub struct EnumVariant {
    pub docs: Vec<String>,
    pub name: Ident,
    pub value: i128,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct UnitDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub kind: Option<Ident>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: Ident,
    pub ty: Ident,
}

#[derive(Debug, Clone)]
pub struct Stmt {
    pub docs: Vec<String>,
    pub kind: StmtKind,
    pub span: Span,
}

// A spec's syntax tree is built once per build and read in place: boxing the large variant
// would only add indirection to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum StmtKind {
    /// `anchor header;`
    Anchor(Ident),
    /// `align 4 from stub;`
    Align {
        to: u64,
        from: Option<Ident>,
    },
    /// `byte_order little if expr else big;`
    ByteOrder {
        order: ByteOrder,
        condition: Option<(Expr, ByteOrder)>,
    },
    Field(Field),
}

#[derive(Debug, Clone)]
pub struct Field {
    /// `None` for `_` (a reserved field, kept as received).
    pub name: Option<Ident>,
    pub name_span: Span,
    pub ty: TypeExpr,
    pub value: Option<Expr>,
    pub condition: Option<Expr>,
    /// `within EXPR`: decoded within the next EXPR bytes, which it must use up (a region whose
    /// end only a later field tells, like the DCE/RPC body before an authentication trailer).
    pub within: Option<Expr>,
    /// `from EXPR`: a view, decoded from the bytes EXPR gives (pieces gathered in session
    /// memory), not from the input; never encoded.
    pub from: Option<Expr>,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

// A spec's syntax tree is built once per build and read in place: boxing the large variant
// would only add indirection to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TypeKind {
    /// A base type with an optional `[size]` (`[]` when empty) and `until` clause.
    Sized {
        base: BaseType,
        size: Option<Option<Expr>>,
        until: Option<Expr>,
    },
    Switch(Switch),
    /// `unit { ... }` written in place.
    Inline {
        kind: Option<Ident>,
        body: Vec<Stmt>,
    },
}

#[derive(Debug, Clone)]
pub enum BaseType {
    /// `b"\xffSMB"`, `"PORT"`: a literal that must be present.
    Literal(Vec<u8>),
    /// `i"PORT"`: a case-insensitive literal; the case received is kept.
    CiLiteral(Vec<u8>),
    /// `ptr<T>`: an NDR pointer (referent id, deferred pointee).
    Ptr(Box<TypeExpr>),
    /// `u16`, `bytes`, `Header`, `smb::Message(dir)`.
    Named { path: Path, args: Vec<Expr> },
}

#[derive(Debug, Clone)]
pub struct Switch {
    pub on: Vec<Expr>,
    pub cases: Vec<SwitchCase>,
}

#[derive(Debug, Clone)]
pub struct SwitchCase {
    pub patterns: Vec<Pattern>,
    pub name: Option<Ident>,
    /// `None` for `()`: the case carries nothing.
    pub ty: Option<TypeExpr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    /// One element per switch expression (a single element for a one-expression switch);
    /// an empty vector is the catch-all `_`.
    pub elems: Vec<PatternElem>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum PatternElem {
    Wildcard,
    Int(i128),
    Bool(bool),
    Bytes(Vec<u8>),
    /// A case-insensitive string.
    CiBytes(Vec<u8>),
    Path(Path),
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: Ident,
    pub args: Vec<RoleArg>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct RoleArg {
    pub key: Option<Ident>,
    pub value: RoleValue,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum RoleValue {
    Int(i128),
    Str(String),
    /// `payload`, `smb.pid`, `header`.
    Dotted(Vec<Ident>),
    /// `name .. data`: from the start of the first field to the end of the second.
    Range(Vec<Ident>, Vec<Ident>),
    /// Anything else: an expression (`@remember(opnum, pipe * 65536 + call_id)`).
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitOr,
    BitXor,
    BitAnd,
    Shl,
    Shr,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Int(i128),
    Bool(bool),
    Bytes(Vec<u8>),
    CiBytes(Vec<u8>),
    Path(Path),
    Member(Box<Expr>, Ident),
    Call(Ident, Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}
