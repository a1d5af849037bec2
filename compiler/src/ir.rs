//! The checked intermediate form: names resolved, sizes and roles tied to the fields they
//! govern, layout fields (padding, gaps, line ends) made explicit. Code generation reads only
//! this. `protodslc ir FILE` prints it (its `Debug` form).

pub use protodsl_grammar::ast::{BinOp, ByteOrder, UnOp};

#[derive(Debug, Clone)]
pub struct Program {
    /// In dependency order: a protocol comes after every protocol it imports.
    pub protocols: Vec<Protocol>,
}

#[derive(Debug, Clone)]
pub struct Protocol {
    pub name: String,
    /// File name of the spec, as used in runtime error locations.
    pub file: String,
    pub docs: Vec<String>,
    /// `None`: inherit the byte order of the enclosing unit (`byte_order inherit;`).
    pub order: Option<ByteOrder>,
    pub text: TextConfig,
    pub consts: Vec<Const>,
    pub enums: Vec<Enum>,
    pub units: Vec<Unit>,
    /// Units that frame a TCP stream.
    pub framings: Vec<Framing>,
}

/// A unit that frames a TCP stream (`framing Unit max N;`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub unit: String,
    /// The largest frame, header included; `None` leaves the limit to the configuration.
    pub max: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct TextConfig {
    pub terminator: Vec<u8>,
    pub max_line: u64,
}

#[derive(Debug, Clone)]
pub struct Const {
    pub name: String,
    pub docs: Vec<String>,
    pub value: i128,
}

#[derive(Debug, Clone)]
pub struct Enum {
    pub name: String,
    pub docs: Vec<String>,
    pub bits: u32,
    pub is_flags: bool,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub docs: Vec<String>,
    pub value: i128,
}

/// A type defined in some protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypeRef {
    pub protocol: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    Plain,
    /// The unit is one text line: content up to the protocol's line terminator.
    Line,
    /// NDR constructed type: pointees of its pointers come after all of its scalars.
    Deferred,
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    pub docs: Vec<String>,
    pub params: Vec<(String, ExprTy)>,
    pub kind: UnitKind,
    pub items: Vec<Item>,
    /// Contains pointers, directly or through embedded deferring units.
    pub has_deferred: bool,
    /// Fields whose positions the encoder records (targets of lengths and offsets).
    pub measured: Vec<String>,
    pub location: String,
}

impl Unit {
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.items.iter().flat_map(|i| match i {
            Item::Field(f) => std::slice::from_ref(f),
            Item::Bits(g) => g.fields.as_slice(),
            _ => &[],
        })
    }
}

// The IR is built once per build and read in place: boxing `Field` would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Item {
    Anchor(String),
    /// Padding to a multiple of `to` from `from`, kept as received in field `field`.
    Align {
        to: u64,
        from: String,
        field: String,
    },
    Order {
        order: ByteOrder,
        cond: Option<(Expr, ByteOrder)>,
    },
    Field(Field),
    /// Integers packed into whole bytes, most significant bit first.
    Bits(BitGroup),
    /// Decoding of the items up to the matching `EndLimit` is restricted to the size given by a
    /// length field: `(value - add) * unit_bytes`.
    BeginLimit {
        id: usize,
        length_field: String,
        conv: Conv,
        unit_bytes: u64,
        add: i64,
        /// The length counts from this earlier field (it includes itself): the limit is what
        /// remains of that size after the bytes already read since the field's start.
        since: Option<String>,
        /// The limit is opened only when this holds (the condition of an optional target).
        when: Option<Expr>,
    },
    /// Records the decode position before a field (the start of a self-inclusive length).
    Mark(String),
    /// Moves to the position of a field located by an `@offset` (before any length limit
    /// around it), keeping the bytes skipped.
    Seek(String),
    /// Decoding of the items up to the matching `EndLimit` is restricted to the size given by
    /// an expression (`within EXPR`); the encoder needs nothing.
    BeginWithin {
        id: usize,
        size: Expr,
    },
    EndLimit {
        id: usize,
    },
}

#[derive(Debug, Clone)]
pub struct BitGroup {
    pub bytes: usize,
    pub fields: Vec<Field>,
}

/// The roles and their units are defined once, for the runtime too, in `honeyfarm-roles`.
pub use honeyfarm_roles::{Issuer, SizeUnit};

/// A role as the runtime sees it.
pub type RuntimeRole = honeyfarm_roles::Role<String>;

/// A field's role: the runtime's roles, with the ones the encoder computes kept in the form it
/// needs (the fields a length spans, the path a nested length follows).
#[derive(Debug, Clone)]
pub enum Role {
    Length {
        first: String,
        last: String,
        unit: SizeUnit,
        add: i64,
    },
    Offset {
        target: String,
        from: String,
        add: i64,
    },
    /// A length computed from a value reached through nested fields and pointers
    /// (`@length(of = name.value.data)`): NDR lengths that describe deferred pointees.
    ValueLength {
        path: Vec<Step>,
        text: String,
        unit: SizeUnit,
        add: i64,
    },
    /// `@length` with no target: the number holds the size of a field that declares
    /// `@size(...)` with a path to it; that field's encoder sets it.
    Held,
    /// Every other role (cookie, address, timestamp, ...): declared, never computed.
    Plain(RuntimeRole),
}

impl Role {
    /// What a length describes, as written: `payload`, `a..b`, `name.buffer.chars`.
    pub fn target_text(&self) -> Option<String> {
        match self {
            Role::Length { first, last, .. } if first == last => Some(first.clone()),
            Role::Length { first, last, .. } => Some(format!("{first}..{last}")),
            Role::ValueLength { text, .. } => Some(text.clone()),
            Role::Offset { target, .. } => Some(target.clone()),
            _ => None,
        }
    }

    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            Role::Length { .. } | Role::Offset { .. } | Role::ValueLength { .. }
        )
    }

    /// The role as generated code and the runtime see it.
    pub fn runtime(&self) -> RuntimeRole {
        let of = self.target_text().unwrap_or_default();
        match self {
            Role::Length { unit, add, .. } | Role::ValueLength { unit, add, .. } => {
                RuntimeRole::Length {
                    of,
                    unit: *unit,
                    add: *add,
                }
            }
            Role::Held => RuntimeRole::Length {
                of: "(held for a @size)".into(),
                unit: SizeUnit::Bytes,
                add: 0,
            },
            Role::Offset { from, add, .. } => RuntimeRole::Offset {
                of,
                from: from.clone(),
                add: *add,
            },
            Role::Plain(r) => r.clone(),
        }
    }

    /// What the role means, in a sentence (generated docs).
    pub fn describe(&self) -> String {
        match self {
            Role::ValueLength { text, add, .. } => {
                format!("size of `{text}`, plus {add}; recomputed on encode")
            }
            Role::Held => {
                "the size of a field that declares `@size` with a path here; set on encode".into()
            }
            other => other.runtime().describe(),
        }
    }
}

/// One step of a nested value path.
#[derive(Debug, Clone)]
pub struct Step {
    pub field: String,
    pub kind: StepKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A unit field.
    Plain,
    /// A unit field declared with `if`.
    Optional,
    /// A pointer field: the step goes on to its pointee.
    Pointer,
    /// The last step: a byte string (size: its bytes).
    Bytes,
    /// The last step: a UTF-16 string.
    Utf16,
    /// The last step: an array (size: its elements).
    Seq,
}

#[derive(Debug, Clone)]
pub struct Field {
    /// Rust field name (layout fields start with `_`).
    pub name: String,
    pub docs: Vec<String>,
    /// `proto-dsl:line:col` of the declaration.
    pub location: String,
    /// Layout: kept for exactness, neither matched nor rewritten.
    pub layout: bool,
    pub roles: Vec<Role>,
    pub ty: Ty,
    /// `name: T = value`: checked on decode.
    pub check: Option<i128>,
    /// `_: T = value`: the value written when the field is built by hand.
    pub default: Option<i128>,
    pub cond: Option<Expr>,
    /// Set when the field is the target of an `@offset`: decoding first skips to the position
    /// and keeps the skipped bytes in the layout field `gap`.
    pub located: Option<Located>,
    /// Boxed because the unit contains itself through this field.
    pub boxed: bool,
    /// `@size(path)`: the size is held by a field inside an earlier field (an HTTP
    /// `Content-Length` header, the size in an SMTP `BDAT` line).
    pub size_from: Option<SizeFrom>,
    /// Its length is a hint (`@length(of = x, hint)`): it sizes nothing on decode; the encoder
    /// recomputes it only when it agreed with what it describes when decoded.
    pub hint: bool,
    /// `@remember(name, key)`: on decode, the value is stored in the session's memory under the
    /// name and the key's value.
    pub remember: Option<(String, Expr, ExprTy)>,
    /// `@append(name, key)`: like `@remember`, but adds the value to what is remembered.
    pub append: bool,
    /// `from EXPR`: a view decoded from these bytes instead of the input (`None` when they do
    /// not decode); not encoded, not rewritable.
    pub view: Option<Expr>,
}

impl Field {
    /// Stored as an `Option`: conditional fields and views.
    pub fn optional(&self) -> bool {
        self.cond.is_some() || self.view.is_some()
    }
}

/// Where a field's size is held: a path from an earlier field of the unit down to a number.
#[derive(Debug, Clone)]
pub struct SizeFrom {
    pub root: String,
    pub steps: Vec<PathStep>,
    /// The path as written, for messages.
    pub text: String,
}

#[derive(Debug, Clone)]
pub enum PathStep {
    /// A field of a unit (`optional`: declared with `if`).
    Field { name: String, optional: bool },
    /// Every element of an array, in order; the first that has the rest of the path wins.
    Elements,
    /// One case of a switch.
    Case { switch: TypeRef, case: String },
    /// The number at the end: a text number or an integer of `bits` bits.
    Leaf { conv: Conv, bits: u32 },
}

impl Field {
    /// Stored in the generated struct (literals are not).
    pub fn stored(&self) -> bool {
        !matches!(self.ty, Ty::Literal(_))
    }

    pub fn derived(&self) -> Option<&Role> {
        self.roles.iter().find(|r| r.is_derived())
    }
}

#[derive(Debug, Clone)]
pub struct Located {
    pub offset_field: String,
    pub offset_conv: Conv,
    pub from: String,
    pub add: i64,
    pub gap: String,
}

#[derive(Debug, Clone)]
pub enum BytesSize {
    Expr(Expr),
    /// To the end of the enclosing limit (a length, a line, the input).
    Rest,
    /// Up to a delimiter, which is consumed.
    Until(Vec<u8>),
}

#[derive(Debug, Clone)]
pub enum Ty {
    Int {
        bits: u32,
        signed: bool,
        order: Option<ByteOrder>,
    },
    Enum {
        target: TypeRef,
        bits: u32,
        flags: bool,
    },
    Bytes(BytesSize),
    Literal(Vec<u8>),
    CiLiteral(Vec<u8>),
    Utf16(BytesSize),
    Utf16z,
    Spaces,
    /// Zero or more spaces or tabs.
    OptionalSpaces,
    Token,
    Number(Option<usize>),
    /// A runtime leaf type (`HostPort`, `Ipv4Text`).
    Leaf(&'static str),
    Unit {
        target: TypeRef,
        /// Arguments with their types.
        args: Vec<(Expr, ExprTy)>,
        deferred: bool,
    },
    Ptr(Box<Ty>),
    Array {
        elem: Box<Ty>,
        len: ArrayLen,
    },
    Switch(Switch),
}

#[derive(Debug, Clone)]
pub enum ArrayLen {
    Count(Expr),
    /// Element count from a count field: `value - add`.
    CountField {
        field: String,
        conv: Conv,
        add: i64,
    },
    ToEnd,
    /// Up to and including the element for which the condition holds.
    Until(Expr),
}

#[derive(Debug, Clone)]
pub struct Switch {
    /// Name of the generated enum.
    pub name: String,
    pub on: Vec<Expr>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// The case's unit contains the switch's unit: stored boxed.
    pub boxed: bool,
    /// Alternatives; each is one pattern element per switch expression. Empty: catch-all.
    pub patterns: Vec<Vec<Pat>>,
    pub ty: Option<Ty>,
}

#[derive(Debug, Clone)]
pub enum Pat {
    Any,
    Int(i128),
    Bool(bool),
    Bytes(Vec<u8>),
    CiBytes(Vec<u8>),
}

/// How a field's value becomes an expression value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    Int,
    Enum,
    Flags,
    Number,
    Bytes,
    Utf16,
    /// A vector: usable with `len()`.
    Seq,
    /// A unit: usable with `.member`.
    Unit,
}

impl Ty {
    /// How a value of this type reads in an expression (and in `@remember`): the one table
    /// the checker and the generator share.
    pub fn conv(&self) -> Conv {
        match self {
            Ty::Int { .. } => Conv::Int,
            Ty::Enum { flags: true, .. } => Conv::Flags,
            Ty::Enum { .. } => Conv::Enum,
            Ty::Number(_) => Conv::Number,
            Ty::Bytes(_)
            | Ty::CiLiteral(_)
            | Ty::Spaces
            | Ty::OptionalSpaces
            | Ty::Token
            | Ty::Literal(_) => Conv::Bytes,
            Ty::Utf16(_) | Ty::Utf16z => Conv::Utf16,
            Ty::Array { .. } => Conv::Seq,
            Ty::Unit { .. } | Ty::Ptr(_) | Ty::Switch(_) | Ty::Leaf(_) => Conv::Unit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprTy {
    Int,
    Bool,
    Bytes,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Int(i128),
    Bool(bool),
    Bytes(Vec<u8>),
    CiBytes(Vec<u8>),
    /// A field of the unit being decoded (or encoded).
    Field {
        name: String,
        conv: Conv,
    },
    /// A field of the current array element (in `until`).
    Elem {
        name: String,
        conv: Conv,
    },
    Member {
        base: Box<Expr>,
        name: String,
        conv: Conv,
    },
    Param(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>, ExprTy),
    /// Bytes left in the enclosing limit.
    Remaining,
    /// Length of a vector or byte string.
    Len(Box<Expr>),
    /// The message travels from client to server (set by the caller of the decoder).
    IsRequest,
    /// A switch field holds the named case.
    IsCase {
        base: Box<Expr>,
        case: String,
    },
    /// `found(root.a.b)`: the path from a decoded field reaches something (a field, an array
    /// element, a switch case).
    Found {
        root: String,
        steps: Vec<PathStep>,
    },
    /// `starts_with(a, b)`: byte string `a` begins with `b`.
    StartsWith(Box<Expr>, Box<Expr>),
    /// `raw(number)`: a text number's bytes as sent.
    Raw(Box<Expr>),
    /// `byte_at(s, i)`: byte `i` of `s`, or -1 past its end.
    ByteAt(Box<Expr>, Box<Expr>),
    /// `answering()`: the kind of the message this one answers, as the caller says.
    Answering,
    /// `recall(name, key)` (bytes) or `recall_int(name, key)` (a number, -1 when unknown): what
    /// an earlier message of the session remembered.
    Recall {
        name: String,
        key: Box<Expr>,
        key_ty: ExprTy,
        int: bool,
    },
    /// `next_is(b"...")`: the input not yet decoded (in the enclosing limit) begins with these bytes.
    NextIs(Vec<u8>),
    /// `ahead()`: the input not yet decoded, up to the enclosing limit (to peek at a header
    /// before choosing how to read it).
    Ahead,
    /// `contains(b"...")`: the input not yet decoded (in the enclosing limit) holds these bytes.
    Contains(Vec<u8>),
}
