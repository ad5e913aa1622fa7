//! The visibility query language: the `query` of ListWorkflowExecutions, ScanWorkflowExecutions
//! and CountWorkflowExecutions, parsed into a typed AST ([`parse`]) and compiled to
//! parameterised SQL for SQLite and PostgreSQL ([`to_sql`]).
//!
//! Temporal wraps the query as `select * from table1 where <query>`, parses it with a MySQL
//! grammar (temporalio/sqlparser) and converts the tree against the namespace's search
//! attributes (`common/persistence/visibility/store/query/converter.go`). We parse the same
//! language by hand and answer with the messages the 1.32 server gives, syntax error positions
//! included: those count bytes from that synthetic prefix, as Temporal's do.
//!
//! Compilation keeps SQL's three-valued logic exact without depending on it: NOT is first pushed
//! down to the leaves (De Morgan; every leaf has an exact negation), after which each leaf
//! compiles to a predicate true exactly when SQL would call it TRUE. A missing attribute
//! satisfies nothing but IS NULL, under any number of NOTs. Custom and predefined attributes
//! live in `visibility_attributes`, one row per value, list element or text token (one row of
//! NULLs when set but empty), and are reached through non-correlated subqueries on `run_id`.
//!
//! Not here: running SQL, the namespace and `TemporalNamespaceDivision IS NULL` filters, paging
//! and order (the caller adds them), writing attribute rows (it shares [`text_tokens`]). Pure.

use std::fmt;
use std::fmt::Write as _;

/// A search attribute's type: Temporal's `IndexedValueType`, numbered 1..=7 in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Keyword,
    Int,
    Double,
    Bool,
    Datetime,
    KeywordList,
}

impl ValueType {
    const ALL: [ValueType; 7] = [
        ValueType::Text,
        ValueType::Keyword,
        ValueType::Int,
        ValueType::Double,
        ValueType::Bool,
        ValueType::Datetime,
        ValueType::KeywordList,
    ];

    pub fn from_i32(n: i32) -> Option<ValueType> {
        usize::try_from(n).ok().and_then(|n| n.checked_sub(1)).and_then(|i| Self::ALL.get(i)).copied()
    }

    pub fn number(self) -> i32 {
        self as i32 + 1
    }

    /// The type named as `name()` gives it (the payload `type` metadata).
    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        Self::ALL.into_iter().find(|v| v.name().as_bytes() == name)
    }

    /// The name Temporal prints (`IndexedValueType.String()`) and uses as payload `type`.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Text => "Text",
            ValueType::Keyword => "Keyword",
            ValueType::Int => "Int",
            ValueType::Double => "Double",
            ValueType::Bool => "Bool",
            ValueType::Datetime => "Datetime",
            ValueType::KeywordList => "KeywordList",
        }
    }

    /// Int, Bool (0/1) and Datetime (Unix ns) are stored as integers.
    fn stored_as_int(self) -> bool {
        matches!(self, ValueType::Int | ValueType::Bool | ValueType::Datetime)
    }
}

/// Where an attribute's values are.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// A column of the main table `visibility`.
    System(&'static str),
    /// Rows of `visibility_attributes` with this `name`.
    Custom(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// The canonical name (what the query said may be an alias of it).
    pub name: String,
    pub value_type: ValueType,
    pub column: Column,
}

/// The attributes of one namespace: exact-name lookup of system, predefined and custom ones.
pub trait Resolver {
    fn resolve(&self, name: &str) -> Option<Attribute>;
}

const EXECUTION_STATUS: &str = "ExecutionStatus";
const EXECUTION_DURATION: &str = "ExecutionDuration";
const NAMESPACE_DIVISION: &str = "TemporalNamespaceDivision";
const RESERVED_PREFIX: &str = "Temporal";

/// Attributes the server sets, each a column of the main table.
pub fn system_attributes() -> Vec<Attribute> {
    use ValueType::*;
    let a = |name: &str, column: &'static str, value_type| Attribute {
        name: name.to_string(),
        value_type,
        column: Column::System(column),
    };
    vec![
        a("WorkflowId", "workflow_id", Keyword),
        a("RunId", "run_id", Keyword),
        a("WorkflowType", "workflow_type", Keyword),
        // Keyword to clients, but the column holds the WorkflowExecutionStatus number.
        a(EXECUTION_STATUS, "status", Keyword),
        a("TaskQueue", "task_queue", Keyword),
        a("StartTime", "start_time", Datetime),
        a("ExecutionTime", "execution_time", Datetime),
        a("CloseTime", "close_time", Datetime),
        a(EXECUTION_DURATION, "execution_duration", Int),
        a("HistoryLength", "history_length", Int),
        a("HistorySizeBytes", "history_size_bytes", Int),
        a("StateTransitionCount", "state_transition_count", Int),
        a("ParentWorkflowId", "parent_workflow_id", Keyword),
        a("ParentRunId", "parent_run_id", Keyword),
        a("RootWorkflowId", "root_workflow_id", Keyword),
        a("RootRunId", "root_run_id", Keyword),
        a(NAMESPACE_DIVISION, "namespace_division", Keyword),
    ]
}

/// Temporal's predefined attributes (`sadefs.predefined`, less TemporalNamespaceDivision, which
/// is a column here): stored like custom ones.
pub fn predefined_attributes() -> Vec<Attribute> {
    use ValueType::*;
    let a = |name: &str, value_type| Attribute {
        name: name.to_string(),
        value_type,
        column: Column::Custom(name.to_string()),
    };
    vec![
        a("TemporalChangeVersion", KeywordList),
        a("BinaryChecksums", KeywordList),
        a("BuildIds", KeywordList),
        a("TemporalPauseInfo", KeywordList),
        a("TemporalReportedProblems", KeywordList),
        a("TemporalUsedWorkerDeploymentVersions", KeywordList),
        a("BatcherNamespace", Keyword),
        a("BatcherUser", Keyword),
        a("TemporalScheduledById", Keyword),
        a("TemporalWorkerDeploymentVersion", Keyword),
        a("TemporalWorkerDeployment", Keyword),
        a("TemporalWorkflowVersioningBehavior", Keyword),
        a("TemporalScheduledStartTime", Datetime),
        a("TemporalSchedulePaused", Bool),
        a("TemporalExternalPayloadCount", Int),
        a("TemporalExternalPayloadSizeBytes", Int),
    ]
}

fn is_builtin(name: &str) -> bool {
    system_attributes().iter().chain(&predefined_attributes()).any(|a| a.name == name)
}

/// The tokens a Text value is stored and searched by: lowercase runs of letters and digits.
pub fn text_tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// A parsed query's filter. `And`/`Or` are n-ary so long chains stay shallow.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Leaf(Predicate),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    pub attribute: Attribute,
    pub test: Test,
}

/// A test on one attribute, its values already typed for storage: Keyword, KeywordList and Text
/// as `Text`; Int as `Int` (or `Double` for a fractional literal); Double as `Double`; Bool as
/// `Int` 0/1; Datetime as `Int` Unix ns; ExecutionStatus as `Int` enum number; ExecutionDuration
/// as `Int` ns. On a KeywordList `=` means "some element equals", and on Text "some token of
/// the value is a token of the literal".
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    Compare(CmpOp, SqlValue),
    In(Vec<SqlValue>),
    NotIn(Vec<SqlValue>),
    Between(SqlValue, SqlValue),
    NotBetween(SqlValue, SqlValue),
    StartsWith(String),
    NotStartsWith(String),
    IsNull,
    IsNotNull,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn negated(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Ge => CmpOp::Lt,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

impl Test {
    /// The exact negation, also under three-valued logic: for a missing attribute (NULL) both a
    /// test and its negation are not TRUE, except IS [NOT] NULL, which are never NULL.
    fn negated(&self) -> Test {
        match self.clone() {
            Test::Compare(op, v) => Test::Compare(op.negated(), v),
            Test::In(v) => Test::NotIn(v),
            Test::NotIn(v) => Test::In(v),
            Test::Between(a, b) => Test::NotBetween(a, b),
            Test::NotBetween(a, b) => Test::Between(a, b),
            Test::StartsWith(p) => Test::NotStartsWith(p),
            Test::NotStartsWith(p) => Test::StartsWith(p),
            Test::IsNull => Test::IsNotNull,
            Test::IsNotNull => Test::IsNull,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Parsed {
    pub filter: Option<Expr>,
    /// GROUP BY's attribute; only Count may have one (see [`group_by_not_allowed`]).
    pub group_by: Option<Attribute>,
    /// The query names TemporalNamespaceDivision, so the caller must not add its default
    /// `TemporalNamespaceDivision IS NULL`.
    pub names_namespace_division: bool,
}

/// A query Temporal would reject; the message is the full INVALID_ARGUMENT text.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryError(pub String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

fn invalid(message: impl fmt::Display) -> QueryError {
    QueryError(format!("invalid query: invalid expression: {message}"))
}

fn unsupported(message: impl fmt::Display) -> QueryError {
    QueryError(format!("invalid query: operation is not supported: {message}"))
}

/// The error for GROUP BY in List or Scan (Temporal's SQL stores' wording).
pub fn group_by_not_allowed() -> QueryError {
    unsupported("'GROUP BY' clause")
}

/// Parses a query against a namespace's attributes.
pub fn parse(query: &str, resolver: &dyn Resolver) -> Result<Parsed, QueryError> {
    let statement = Parser::new(query).statement()?;
    Converter { resolver, names_namespace_division: false }.statement(statement)
}

// ---------------------------------------------------------------------------------------------
// Tokens. Positions in errors are Vitess's: one past the byte after the offending token,
// counted from the start of `select * from table1 [where ]`.

const SELECT_PREFIX: &str = "select * from table1 ";
const WHERE_PREFIX: &str = "select * from table1 where ";
/// Limit on nested parentheses, NOTs and unary operators. Vitess allows 200, but each level
/// costs ~12 KiB of stack in a debug build, and a query must not exhaust a 2 MiB worker thread;
/// people and UIs nest a few levels.
const NESTING_MAX: usize = 64;

/// Lowercased words the grammar gives a meaning (or reserves, so they fail where Vitess fails).
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "and", "as", "asc", "between", "by", "default", "desc", "distinct", "div", "escape", "exists", "false", "from", "group",
    "having", "in", "is", "like", "limit", "mod", "not", "null", "offset", "or", "order", "regexp", "rlike",
    "select", "starts_with", "true", "where", "xor",
];

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(&'static str),
    Ident(String),
    Str(String),
    Num(String),
    /// A value Vitess reads but Temporal cannot parse (a hex number).
    Raw(String),
    Punct(&'static str),
    /// Unreadable input; an error once the parser reaches it.
    Invalid,
    Eof,
}

struct Token {
    kind: Tok,
    start: usize,
    end: usize,
    /// What Vitess prints after "near" (nothing for punctuation).
    near: Option<String>,
}

fn tokenize(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        loop {
            match b.get(i) {
                Some(b' ' | b'\n' | b'\r' | b'\t') => i += 1,
                Some(b'#') => i = line_end(b, i),
                Some(b'-') if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
                Some(b'/') if b.get(i + 1) == Some(&b'*') => match src[i + 2..].find("*/") {
                    Some(k) => i += k + 4,
                    None => {
                        tokens.push(Token { kind: Tok::Invalid, start: i, end: b.len(), near: Some(src[i..].into()) });
                        return tokens;
                    }
                },
                _ => break,
            }
        }
        let Some(&c) = b.get(i) else {
            tokens.push(Token { kind: Tok::Eof, start: i, end: i, near: None });
            return tokens;
        };
        let (kind, end, near) = match c {
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'@' => {
                let end =
                    i + b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'@').count();
                let word = &src[i..end];
                let lower = word.to_ascii_lowercase();
                match KEYWORDS.iter().find(|k| **k == lower) {
                    Some(k) => (Tok::Word(k), end, Some(lower)),
                    None => (Tok::Ident(word.into()), end, Some(word.into())),
                }
            }
            c if c.is_ascii_digit() => scan_number(src, i),
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => scan_number(src, i),
            b'\'' | b'"' => scan_string(src, i, c as char),
            b'`' => scan_quoted_name(src, i),
            _ => match punctuation(&b[i..]) {
                Some((p, len)) => (Tok::Punct(p), i + len, None),
                // Vitess reads one byte; the position is the same, the character is clearer.
                None => (Tok::Invalid, i + 1, src[i..].chars().next().map(String::from)),
            },
        };
        let stop = kind == Tok::Invalid;
        tokens.push(Token { kind, start: i, end, near });
        if stop {
            return tokens;
        }
        i = end;
    }
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..].iter().position(|c| *c == b'\n').map_or(b.len(), |k| from + k + 1)
}

fn punctuation(b: &[u8]) -> Option<(&'static str, usize)> {
    const LONG: [(&str, &str); 9] = [
        ("<=>", "<=>"),
        ("<>", "!="),
        ("!=", "!="),
        ("<=", "<="),
        (">=", ">="),
        ("<<", "<<"),
        (">>", ">>"),
        ("&&", "&&"),
        ("||", "||"),
    ];
    const SHORT: [&str; 18] =
        ["=", "<", ">", "!", "(", ")", ",", ";", "+", "-", "*", "/", "%", "&", "|", "^", "~", "."];
    LONG.iter()
        .find(|(text, _)| b.starts_with(text.as_bytes()))
        .map(|(text, p)| (*p, text.len()))
        .or_else(|| SHORT.iter().find(|p| b.first() == Some(&p.as_bytes()[0])).map(|p| (*p, 1)))
}

fn scan_number(src: &str, start: usize) -> (Tok, usize, Option<String>) {
    let b = src.as_bytes();
    let digits = |from: usize| from + b[from.min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut end;
    let mut raw = false;
    if b[start] == b'0' && matches!(b.get(start + 1), Some(b'x' | b'X')) {
        end = start + 2 + b[start + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        raw = true;
    } else {
        end = digits(start);
        if b.get(end) == Some(&b'.') {
            end = digits(end + 1);
        }
        if matches!(b.get(end), Some(b'e' | b'E')) {
            end += 1;
            if matches!(b.get(end), Some(b'+' | b'-')) {
                end += 1;
            }
            end = digits(end);
        }
    }
    let text = src[start..end].to_string();
    // Vitess: a letter cannot immediately follow a number.
    if b.get(end).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'@') {
        return (Tok::Invalid, end, Some(text));
    }
    (if raw { Tok::Raw(text.clone()) } else { Tok::Num(text.clone()) }, end, Some(text))
}

/// A string in `'…'` or `"…"`: the delimiter doubled or after a backslash stands for itself;
/// `\0 \b \n \r \t \Z` are control characters; a backslash before anything else is dropped.
fn scan_string(src: &str, start: usize, delim: char) -> (Tok, usize, Option<String>) {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    while let Some((k, c)) = chars.next() {
        if c == '\\' {
            let Some((_, e)) = chars.next() else { break };
            out.push(match e {
                '0' => '\0',
                'b' => '\u{8}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'Z' => '\u{1a}',
                other => other,
            });
        } else if c != delim {
            out.push(c);
        } else if chars.peek().map(|(_, c)| *c) == Some(delim) {
            chars.next();
            out.push(delim);
        } else {
            let near = (!out.is_empty()).then(|| out.clone());
            return (Tok::Str(out), start + 1 + k + 1, near);
        }
    }
    let near = (!out.is_empty()).then_some(out);
    (Tok::Invalid, src.len(), near)
}

/// A name in backticks. Temporal drops every backtick from names, a doubled one included.
fn scan_quoted_name(src: &str, start: usize) -> (Tok, usize, Option<String>) {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    while let Some((k, c)) = chars.next() {
        if c != '`' {
            out.push(c);
        } else if chars.peek().map(|(_, c)| *c) == Some('`') {
            chars.next();
            out.push('`');
        } else if out.is_empty() {
            return (Tok::Invalid, start + 1 + k + 1, None);
        } else {
            let name = out.replace('`', "");
            return (Tok::Ident(name), start + 1 + k + 1, Some(out));
        }
    }
    let near = (!out.is_empty()).then_some(out);
    (Tok::Invalid, src.len(), near)
}

// ---------------------------------------------------------------------------------------------
// Syntax: the tree Vitess would build, before names and values mean anything. Temporal checks
// syntax first, so a syntax error anywhere wins over a semantic one.

struct Statement {
    filter: Option<Syntax>,
    group_by: Vec<Syntax>,
    having: bool,
    order_by: Vec<Syntax>,
    limit: bool,
}

enum Syntax {
    And(Vec<Syntax>),
    Or(Vec<Syntax>),
    Not(Box<Syntax>),
    /// `op` as Vitess spells it: `=`, `!=`, `in`, `not like`, `starts_with`, …
    Compare {
        left: Operand,
        op: &'static str,
        right: Operand,
    },
    Range {
        left: Operand,
        negated: bool,
        from: Operand,
        to: Operand,
    },
    Is {
        subject: Box<Syntax>,
        suffix: &'static str,
    },
    Value(Operand),
}

enum Operand {
    Column(String),
    Str(String),
    Num(String),
    Raw(String),
    Bool(bool),
    Null,
    Tuple(Vec<Syntax>),
    Paren(Box<Syntax>),
    Func,
    /// A unary operator Temporal cannot fold into a number, and the source text it applies to.
    Unary {
        op: &'static str,
        src: String,
    },
    Binary,
}

impl Operand {
    /// The Go type Temporal names in errors.
    fn go_type(&self) -> &'static str {
        match self {
            Operand::Column(_) => "*sqlparser.ColName",
            Operand::Str(_) | Operand::Num(_) | Operand::Raw(_) => "*sqlparser.SQLVal",
            Operand::Bool(_) => "sqlparser.BoolVal",
            Operand::Null => "*sqlparser.NullVal",
            Operand::Tuple(_) => "sqlparser.ValTuple",
            Operand::Paren(_) => "*sqlparser.ParenExpr",
            Operand::Func => "*sqlparser.FuncExpr",
            Operand::Unary { .. } => "*sqlparser.UnaryExpr",
            Operand::Binary => "*sqlparser.BinaryExpr",
        }
    }
}

impl Syntax {
    fn go_type(&self) -> &'static str {
        match self {
            Syntax::And(_) => "*sqlparser.AndExpr",
            Syntax::Or(_) => "*sqlparser.OrExpr",
            Syntax::Not(_) => "*sqlparser.NotExpr",
            Syntax::Compare { .. } => "*sqlparser.ComparisonExpr",
            Syntax::Range { .. } => "*sqlparser.RangeCond",
            Syntax::Is { .. } => "*sqlparser.IsExpr",
            Syntax::Value(operand) => operand.go_type(),
        }
    }
}

struct Parser {
    src: String,
    tokens: Vec<Token>,
    at: usize,
    /// Length of the synthetic prefix the positions count from.
    base: usize,
    has_where: bool,
    depth: usize,
}

impl Parser {
    fn new(query: &str) -> Parser {
        let src = query.trim();
        let lower = src.to_ascii_lowercase();
        // Temporal's exact test: a single space between the words.
        let has_where = !src.is_empty() && !lower.starts_with("order by") && !lower.starts_with("group by");
        let base = if has_where { WHERE_PREFIX.len() } else { SELECT_PREFIX.len() };
        Parser { src: src.to_string(), tokens: tokenize(src), at: 0, base, has_where, depth: 0 }
    }

    fn kind(&self) -> &Tok {
        &self.tokens[self.at].kind
    }

    /// Moves past the current token; the last (Eof or Invalid) is never passed.
    fn advance(&mut self) {
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.kind(), Tok::Word(w) if *w == word)
    }

    fn is_punct(&self, punct: &str) -> bool {
        matches!(self.kind(), Tok::Punct(p) if *p == punct)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.advance();
        }
        found
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let found = self.is_punct(punct);
        if found {
            self.advance();
        }
        found
    }

    fn expect_word(&mut self, word: &str) -> Result<(), QueryError> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.error("syntax error"))
        }
    }

    fn expect_punct(&mut self, punct: &str) -> Result<(), QueryError> {
        if self.eat_punct(punct) {
            Ok(())
        } else {
            Err(self.error("syntax error"))
        }
    }

    fn error(&self, what: &str) -> QueryError {
        let token = &self.tokens[self.at];
        let position = self.base + token.end + 1;
        let near = token.near.as_ref().map(|n| format!(" near '{n}'")).unwrap_or_default();
        QueryError(format!("invalid query: malformed SQL query: {what} at position {position}{near}"))
    }

    fn nest<T>(&mut self, f: impl FnOnce(&mut Parser) -> Result<T, QueryError>) -> Result<T, QueryError> {
        self.depth += 1;
        if self.depth >= NESTING_MAX {
            return Err(self.error("max nesting level reached"));
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn statement(mut self) -> Result<Statement, QueryError> {
        let filter = if self.has_where { Some(self.expression()?) } else { None };
        let mut statement =
            Statement { filter, group_by: Vec::new(), having: false, order_by: Vec::new(), limit: false };
        if self.eat_word("group") {
            self.expect_word("by")?;
            statement.group_by = self.expressions()?;
        }
        if self.eat_word("having") {
            self.expression()?;
            statement.having = true;
        }
        if self.eat_word("order") {
            self.expect_word("by")?;
            loop {
                statement.order_by.push(self.expression()?);
                let _ = self.eat_word("asc") || self.eat_word("desc");
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        if self.eat_word("limit") {
            self.value()?;
            if self.eat_punct(",") || self.eat_word("offset") {
                self.value()?;
            }
            statement.limit = true;
        }
        self.eat_punct(";");
        if *self.kind() != Tok::Eof {
            return Err(self.error("syntax error"));
        }
        Ok(statement)
    }

    fn expressions(&mut self) -> Result<Vec<Syntax>, QueryError> {
        let mut items = vec![self.expression()?];
        while self.eat_punct(",") {
            items.push(self.expression()?);
        }
        Ok(items)
    }

    /// Precedence, loosest first: OR, AND, NOT, IS, comparisons.
    fn expression(&mut self) -> Result<Syntax, QueryError> {
        let mut items = vec![self.conjunction()?];
        while self.eat_word("or") || self.eat_punct("||") {
            items.push(self.conjunction()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Syntax::Or(items) })
    }

    fn conjunction(&mut self) -> Result<Syntax, QueryError> {
        let mut items = vec![self.negation()?];
        while self.eat_word("and") || self.eat_punct("&&") {
            items.push(self.negation()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Syntax::And(items) })
    }

    fn negation(&mut self) -> Result<Syntax, QueryError> {
        if self.eat_word("not") {
            return self.nest(|p| Ok(Syntax::Not(Box::new(p.negation()?))));
        }
        let mut syntax = self.predicate()?;
        while self.eat_word("is") {
            let negated = self.eat_word("not");
            let suffix = match (self.kind(), negated) {
                (Tok::Word("null"), false) => "is null",
                (Tok::Word("null"), true) => "is not null",
                (Tok::Word("true"), false) => "is true",
                (Tok::Word("true"), true) => "is not true",
                (Tok::Word("false"), false) => "is false",
                (Tok::Word("false"), true) => "is not false",
                _ => return Err(self.error("syntax error")),
            };
            self.advance();
            syntax = Syntax::Is { subject: Box::new(syntax), suffix };
        }
        Ok(syntax)
    }

    fn predicate(&mut self) -> Result<Syntax, QueryError> {
        let left = self.value()?;
        let negated = self.eat_word("not");
        let kind = self.kind().clone();
        match kind {
            Tok::Punct(op @ ("=" | "!=" | "<" | "<=" | ">" | ">=" | "<=>")) if !negated => {
                self.advance();
                Ok(Syntax::Compare { left, op, right: self.value()? })
            }
            Tok::Word("in") => {
                self.advance();
                if !self.is_punct("(") {
                    return Err(self.error("syntax error"));
                }
                let right = self.value()?;
                let right = match right {
                    Operand::Paren(single) => Operand::Tuple(vec![*single]),
                    other => other,
                };
                Ok(Syntax::Compare { left, op: if negated { "not in" } else { "in" }, right })
            }
            Tok::Word(word @ ("like" | "regexp" | "rlike" | "starts_with")) => {
                self.advance();
                let right = self.value()?;
                if word == "like" && self.eat_word("escape") {
                    self.value()?;
                }
                let op = match (word, negated) {
                    ("like", false) => "like",
                    ("like", true) => "not like",
                    ("starts_with", false) => "starts_with",
                    ("starts_with", true) => "not starts_with",
                    (_, false) => "regexp",
                    (_, true) => "not regexp",
                };
                Ok(Syntax::Compare { left, op, right })
            }
            Tok::Word("between") => {
                self.advance();
                let from = self.value()?;
                self.expect_word("and")?;
                Ok(Syntax::Range { left, negated, from, to: self.value()? })
            }
            _ if negated => Err(self.error("syntax error")),
            _ => Ok(Syntax::Value(left)),
        }
    }

    /// A value expression; arithmetic parses (so errors match Temporal's) but is never allowed.
    fn value(&mut self) -> Result<Operand, QueryError> {
        let mut left = self.unary()?;
        while matches!(
            self.kind(),
            Tok::Punct("+" | "-" | "*" | "/" | "%" | "&" | "|" | "^" | "<<" | ">>") | Tok::Word("div" | "mod")
        ) {
            self.advance();
            self.unary()?;
            left = Operand::Binary;
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Operand, QueryError> {
        let op = match self.kind() {
            Tok::Punct(op @ ("-" | "+" | "!" | "~")) => *op,
            _ => return self.primary(),
        };
        let start = self.tokens[self.at].start;
        self.advance();
        let inner = self.nest(Parser::unary)?;
        Ok(match (op, inner) {
            ("-", Operand::Num(n)) => Operand::Num(n.strip_prefix('-').map_or_else(|| format!("-{n}"), str::to_string)),
            ("+", number @ Operand::Num(_)) => number,
            _ => Operand::Unary { op, src: self.src[start..self.tokens[self.at - 1].end].to_string() },
        })
    }

    fn primary(&mut self) -> Result<Operand, QueryError> {
        let operand = match self.kind().clone() {
            Tok::Ident(mut name) => {
                self.advance();
                if self.is_punct("(") {
                    return self.call();
                }
                if self.eat_punct(".") {
                    let Tok::Ident(column) = self.kind().clone() else { return Err(self.error("syntax error")) };
                    name = format!("{name}.{column}");
                    self.advance();
                }
                return Ok(Operand::Column(name));
            }
            Tok::Str(s) => Operand::Str(s),
            Tok::Num(n) => Operand::Num(n),
            Tok::Raw(r) => Operand::Raw(r),
            Tok::Word("true") => Operand::Bool(true),
            Tok::Word("false") => Operand::Bool(false),
            Tok::Word("null") => Operand::Null,
            Tok::Punct("(") => {
                self.advance();
                return self.nest(|p| {
                    let mut items = p.expressions()?;
                    p.expect_punct(")")?;
                    Ok(if items.len() == 1 { Operand::Paren(Box::new(items.remove(0))) } else { Operand::Tuple(items) })
                });
            }
            _ => return Err(self.error("syntax error")),
        };
        self.advance();
        Ok(operand)
    }

    /// `name(…)`, only so that Temporal's "function" errors can be given.
    fn call(&mut self) -> Result<Operand, QueryError> {
        self.advance();
        self.nest(|p| {
            if p.eat_punct("*") || p.is_punct(")") {
                return p.expect_punct(")");
            }
            p.eat_word("distinct");
            p.expressions()?;
            p.expect_punct(")")
        })?;
        Ok(Operand::Func)
    }
}

// ---------------------------------------------------------------------------------------------
// Meaning: names resolved, operators checked per type, literals typed — in Temporal's order, so
// the first error reported is Temporal's.

/// A literal as Temporal's `sqlquery.ParseValue` yields it (Go types in messages).
enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Lit {
    fn go_type(&self) -> &'static str {
        match self {
            Lit::Str(_) => "string",
            Lit::Int(_) => "int64",
            Lit::Float(_) => "float64",
            Lit::Bool(_) => "bool",
        }
    }

    /// Go's `%#v`.
    fn go_repr(&self) -> String {
        match self {
            Lit::Str(s) => go_quote(s),
            Lit::Int(n) => n.to_string(),
            Lit::Float(f) => go_float(*f),
            Lit::Bool(b) => b.to_string(),
        }
    }
}

enum Values {
    One(SqlValue),
    List(Vec<SqlValue>),
}

/// WorkflowExecutionStatus by number: the short name and the enum name, both accepted.
const EXECUTION_STATUSES: [(&str, &str); 9] = [
    ("Unspecified", "WORKFLOW_EXECUTION_STATUS_UNSPECIFIED"),
    ("Running", "WORKFLOW_EXECUTION_STATUS_RUNNING"),
    ("Completed", "WORKFLOW_EXECUTION_STATUS_COMPLETED"),
    ("Failed", "WORKFLOW_EXECUTION_STATUS_FAILED"),
    ("Canceled", "WORKFLOW_EXECUTION_STATUS_CANCELED"),
    ("Terminated", "WORKFLOW_EXECUTION_STATUS_TERMINATED"),
    ("ContinuedAsNew", "WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW"),
    ("TimedOut", "WORKFLOW_EXECUTION_STATUS_TIMED_OUT"),
    ("Paused", "WORKFLOW_EXECUTION_STATUS_PAUSED"),
];

struct Converter<'a> {
    resolver: &'a dyn Resolver,
    names_namespace_division: bool,
}

impl Converter<'_> {
    fn statement(mut self, statement: Statement) -> Result<Parsed, QueryError> {
        if statement.limit {
            return Err(unsupported("'LIMIT' clause"));
        }
        let filter = statement.filter.map(|f| self.expr(f)).transpose()?;
        if statement.group_by.len() > 1 {
            return Err(unsupported("'GROUP BY' clause supports only a single field"));
        }
        let mut group_by = None;
        for item in &statement.group_by {
            let (alias, attribute) = self.column_of(item)?;
            let allowed = attribute.name == EXECUTION_STATUS
                || attribute.name == NAMESPACE_DIVISION
                || attribute.name.starts_with("TemporalLowCardinalityKeyword");
            if !allowed {
                return Err(unsupported(format!("'GROUP BY' clause is not supported for search attribute {alias}")));
            }
            group_by = Some(attribute);
        }
        // Temporal silently ignores HAVING; a filter that is not applied is worse than an error.
        if statement.having {
            return Err(unsupported("'HAVING' clause"));
        }
        for item in &statement.order_by {
            let (_, attribute) = self.column_of(item)?;
            if attribute.value_type == ValueType::Text {
                return Err(unsupported("unable to sort by search attribute type Text"));
            }
        }
        if !statement.order_by.is_empty() {
            return Err(unsupported("'ORDER BY' clause"));
        }
        Ok(Parsed { filter, group_by, names_namespace_division: self.names_namespace_division })
    }

    fn expr(&mut self, syntax: Syntax) -> Result<Expr, QueryError> {
        Ok(match syntax {
            Syntax::And(items) => Expr::And(items.into_iter().map(|s| self.expr(s)).collect::<Result<_, _>>()?),
            Syntax::Or(items) => Expr::Or(items.into_iter().map(|s| self.expr(s)).collect::<Result<_, _>>()?),
            Syntax::Not(inner) => Expr::Not(Box::new(self.expr(*inner)?)),
            Syntax::Compare { left, op, right } => self.comparison(&left, op, &right)?,
            Syntax::Range { left, negated, from, to } => self.range(&left, negated, &from, &to)?,
            Syntax::Is { subject, suffix } => {
                let (_, attribute) = self.column_of(&subject)?;
                let test = match suffix {
                    "is null" => Test::IsNull,
                    "is not null" => Test::IsNotNull,
                    _ => return Err(invalid("'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'")),
                };
                Expr::Leaf(Predicate { attribute, test })
            }
            Syntax::Value(Operand::Paren(inner)) => self.expr(*inner)?,
            Syntax::Value(Operand::Column(_)) => return Err(invalid("incomplete expression")),
            Syntax::Value(Operand::Func) => return Err(unsupported("function expression")),
            Syntax::Value(other) => return Err(unsupported(format!("expression of type {}", other.go_type()))),
        })
    }

    fn comparison(&mut self, left: &Operand, op: &'static str, right: &Operand) -> Result<Expr, QueryError> {
        use ValueType::*;
        let (alias, attribute) = self.column(left)?;
        let given = values(right, &alias, &attribute)?;
        let allowed: &[&str] = match attribute.value_type {
            Keyword => &["=", "!=", "<", "<=", ">", ">=", "in", "not in", "starts_with", "not starts_with"],
            KeywordList => &["=", "!=", "in", "not in"],
            Text => &["=", "!="],
            Int | Double | Bool | Datetime => &["=", "!=", "<", "<=", ">", ">=", "in", "not in"],
        };
        if !allowed.contains(&op) {
            return Err(unsupported(format!(
                "operator '{}' not supported for {} type search attribute '{alias}'",
                op.to_uppercase(),
                attribute.value_type.name()
            )));
        }
        let test = match (op, given) {
            ("in", Values::List(v)) => Test::In(v),
            ("not in", Values::List(v)) => Test::NotIn(v),
            ("starts_with" | "not starts_with", Values::One(v)) => {
                let SqlValue::Text(prefix) = v else {
                    // Only ExecutionStatus, whose values became numbers.
                    let shown = match (right, &v) {
                        (Operand::Str(s), _) => s.clone(),
                        (_, SqlValue::Int(n)) => status_name(*n).to_string(),
                        _ => String::new(),
                    };
                    return Err(invalid(format!(
                        "right-hand side of \"{op}\" operator must be a literal string (got: {shown})"
                    )));
                };
                if op == "starts_with" {
                    Test::StartsWith(prefix)
                } else {
                    Test::NotStartsWith(prefix)
                }
            }
            (op, Values::One(v)) => {
                let op = match op {
                    "=" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                Test::Compare(op, v)
            }
            (_, Values::List(_)) => return Err(invalid("unexpected value type sqlparser.ValTuple")),
        };
        if let (Text, Test::Compare(_, SqlValue::Text(s))) = (attribute.value_type, &test) {
            // Temporal's test (tokens split on spaces); ours may find none, which matches nothing.
            if s.split(' ').all(str::is_empty) {
                return Err(invalid(format!("no tokens found filtering on Text type search attribute {alias}")));
            }
        }
        Ok(Expr::Leaf(Predicate { attribute, test }))
    }

    fn range(&mut self, left: &Operand, negated: bool, from: &Operand, to: &Operand) -> Result<Expr, QueryError> {
        let (alias, attribute) = self.column(left)?;
        let t = attribute.value_type;
        if !matches!(t, ValueType::Datetime | ValueType::Double | ValueType::Int | ValueType::Keyword) {
            return Err(invalid(format!(
                "cannot do range condition on search attribute '{alias}' of type {}",
                t.name()
            )));
        }
        let single = |operand: &Operand| match values(operand, &alias, &attribute)? {
            Values::One(v) => Ok(v),
            Values::List(_) => Err(invalid("unexpected value type sqlparser.ValTuple")),
        };
        let (from, to) = (single(from)?, single(to)?);
        let test = if negated { Test::NotBetween(from, to) } else { Test::Between(from, to) };
        Ok(Expr::Leaf(Predicate { attribute, test }))
    }

    fn column_of(&mut self, syntax: &Syntax) -> Result<(String, Attribute), QueryError> {
        match syntax {
            Syntax::Value(operand) => self.column(operand),
            other => Err(invalid(format!("must be a column name but was {}", other.go_type()))),
        }
    }

    /// The alias as written (for messages) and the attribute it names.
    fn column(&mut self, operand: &Operand) -> Result<(String, Attribute), QueryError> {
        let Operand::Column(alias) = operand else {
            return Err(invalid(format!("must be a column name but was {}", operand.go_type())));
        };
        let attribute = self.resolve(alias)?;
        if attribute.name == NAMESPACE_DIVISION {
            self.names_namespace_division = true;
        }
        Ok((alias.clone(), attribute))
    }

    /// Exact name; else a built-in one with the `Temporal` prefix removed or added; else
    /// `[Temporal]ScheduleId`, which schedules' queries use for the workflow id.
    fn resolve(&self, alias: &str) -> Result<Attribute, QueryError> {
        if let Some(attribute) = self.resolver.resolve(alias) {
            return Ok(attribute);
        }
        let builtin = |name: &str| self.resolver.resolve(name).filter(|a| is_builtin(&a.name));
        let unprefixed = alias.strip_prefix(RESERVED_PREFIX);
        let found = match unprefixed {
            Some(rest) => builtin(rest),
            None => builtin(&format!("{RESERVED_PREFIX}{alias}")),
        };
        found
            .or_else(|| (unprefixed.unwrap_or(alias) == "ScheduleId").then(|| builtin("WorkflowId")).flatten())
            .ok_or_else(|| QueryError(format!("invalid query: invalid search attribute: {alias}")))
    }
}

/// The typed value(s) of a right-hand side, checked as Temporal's `parseValueExpr` does.
fn values(operand: &Operand, alias: &str, attribute: &Attribute) -> Result<Values, QueryError> {
    let Operand::Tuple(items) = operand else { return value(operand, alias, attribute).map(Values::One) };
    let mut list = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Syntax::Value(Operand::Tuple(_)) => return Err(invalid("unexpected value type sqlparser.ValTuple")),
            Syntax::Value(operand) => list.push(value(operand, alias, attribute)?),
            other => return Err(invalid(format!("unexpected value type {}", other.go_type()))),
        }
    }
    Ok(Values::List(list))
}

/// One literal typed for its attribute, checked as Temporal's `parseSQLVal` does.
fn value(operand: &Operand, alias: &str, attribute: &Attribute) -> Result<SqlValue, QueryError> {
    let unparsable = |text: &str| invalid(format!("unable to parse value {}", go_quote(text)));
    let lit = match operand {
        Operand::Str(s) => Lit::Str(s.clone()),
        Operand::Num(text) => match text.parse::<i64>() {
            Ok(n) => Lit::Int(n),
            Err(_) => Lit::Float(text.parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(|| unparsable(text))?),
        },
        Operand::Raw(text) => return Err(unparsable(text)),
        // Temporal checks a boolean against the attribute's type only, even for ExecutionStatus.
        Operand::Bool(b) => return typed_value(alias, attribute.value_type, Lit::Bool(*b)),
        Operand::Func => return Err(unsupported("nested func")),
        Operand::Column(name) => {
            return Err(unsupported(format!(
                "column name on the right side of comparison expression (did you forget to quote {}?)",
                go_quote(name)
            )))
        }
        Operand::Unary { op: "-" | "+", src } => {
            return Err(invalid(format!("unary operator not supported in {}", go_quote(src))))
        }
        Operand::Unary { op, .. } => return Err(unsupported(format!("unary operator {}", go_quote(op)))),
        other => return Err(invalid(format!("unexpected value type {}", other.go_type()))),
    };
    match (&attribute.column, attribute.name.as_str()) {
        (Column::System(_), EXECUTION_STATUS) => status_value(lit),
        (Column::System(_), EXECUTION_DURATION) => duration_value(lit),
        _ => typed_value(alias, attribute.value_type, lit),
    }
}

fn typed_value(alias: &str, t: ValueType, lit: Lit) -> Result<SqlValue, QueryError> {
    use ValueType::*;
    Ok(match (t, lit) {
        (Int | Datetime, Lit::Int(n)) => SqlValue::Int(n),
        (Int | Double, Lit::Float(f)) => SqlValue::Double(f),
        (Double, Lit::Int(n)) => SqlValue::Double(n as f64),
        (Bool, Lit::Bool(b)) => SqlValue::Int(i64::from(b)),
        (Datetime, Lit::Str(s)) => {
            SqlValue::Int(parse_datetime(&s).ok_or_else(|| invalid(format!("unable to parse datetime '{s}'")))?)
        }
        (Keyword | KeywordList | Text, Lit::Str(s)) => SqlValue::Text(s),
        (t, lit) => {
            return Err(invalid(format!(
                "invalid value type for search attribute {alias} of type {}: {} (type: {})",
                t.name(),
                lit.go_repr(),
                lit.go_type()
            )))
        }
    })
}

fn status_value(lit: Lit) -> Result<SqlValue, QueryError> {
    match lit {
        Lit::Int(n) if usize::try_from(n).is_ok_and(|i| i < EXECUTION_STATUSES.len()) => Ok(SqlValue::Int(n)),
        Lit::Int(n) => Err(invalid(format!("invalid {EXECUTION_STATUS} value {n}"))),
        Lit::Str(s) => EXECUTION_STATUSES
            .iter()
            .position(|(short, long)| *short == s || *long == s)
            .map(|i| SqlValue::Int(i as i64))
            .ok_or_else(|| invalid(format!("invalid {EXECUTION_STATUS} value '{s}'"))),
        other => {
            Err(invalid(format!("unexpected value type {} for search attribute {EXECUTION_STATUS}", other.go_type())))
        }
    }
}

fn status_name(n: i64) -> &'static str {
    usize::try_from(n).ok().and_then(|i| EXECUTION_STATUSES.get(i)).map_or("", |(short, _)| short)
}

fn duration_value(lit: Lit) -> Result<SqlValue, QueryError> {
    match lit {
        Lit::Int(n) => Ok(SqlValue::Int(n)),
        Lit::Str(s) => parse_execution_duration(&s)
            .map(SqlValue::Int)
            .ok_or_else(|| invalid(format!("invalid duration value for search attribute {EXECUTION_DURATION}: {s}"))),
        other => {
            Err(invalid(format!("unexpected value type {} for search attribute {EXECUTION_DURATION}", other.go_type())))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Literal formats, as Go reads and prints them.

/// Go's `time.RFC3339Nano` as `time.Parse` reads it (`2024-01-02T15:04:05[.frac](Z|±hh:mm)`;
/// Go also takes a one-digit hour and offsets up to 24:60) to Unix nanoseconds. Years beyond i64
/// nanoseconds (before 1677, after 2262) are clamped, which keeps comparisons with stored times right.
fn parse_datetime(s: &str) -> Option<i64> {
    let mut rest = s;
    let year = take_number(&mut rest, 4, 4)?;
    take_char(&mut rest, '-')?;
    let month = take_number(&mut rest, 2, 2)?;
    take_char(&mut rest, '-')?;
    let day = take_number(&mut rest, 2, 2)?;
    take_char(&mut rest, 'T')?;
    let hour = take_number(&mut rest, 1, 2).filter(|h| *h < 24)?;
    take_char(&mut rest, ':')?;
    let minute = take_number(&mut rest, 2, 2).filter(|m| *m < 60)?;
    take_char(&mut rest, ':')?;
    let second = take_number(&mut rest, 2, 2).filter(|s| *s < 60)?;
    let mut nanos: i64 = 0;
    if let Some(fraction) = rest.strip_prefix(['.', ',']).filter(|f| f.starts_with(|c: char| c.is_ascii_digit())) {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        // Go keeps nine digits and drops the rest.
        let kept = &fraction[..digits.min(9)];
        nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = if rest == "Z" {
        0
    } else {
        let sign = if take_char(&mut rest, '+').is_some() { 1 } else { take_char(&mut rest, '-').map(|_| -1)? };
        let hours = take_number(&mut rest, 2, 2).filter(|h| *h <= 24)?;
        take_char(&mut rest, ':')?;
        let minutes = take_number(&mut rest, 2, 2).filter(|m| *m <= 60)?;
        if !rest.is_empty() {
            return None;
        }
        sign * i64::from(hours * 3600 + minutes * 60)
    };
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let seconds = date.and_hms_opt(hour, minute, second)?.and_utc().timestamp() - offset_seconds;
    let ns = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    Some(ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// Takes `min..=max` leading ASCII digits (as many as there are, up to `max`).
fn take_number(rest: &mut &str, min: usize, max: usize) -> Option<u32> {
    let n = rest.bytes().take(max).take_while(u8::is_ascii_digit).count();
    let (digits, after) = rest.split_at(n);
    *rest = after;
    if n < min {
        None
    } else {
        digits.parse().ok()
    }
}

fn take_char(rest: &mut &str, c: char) -> Option<()> {
    *rest = rest.strip_prefix(c)?;
    Some(())
}

/// An ExecutionDuration literal as Temporal reads it: integer nanoseconds, a Go duration with
/// `d` for 24 hours ("1h30m", "1.5s", "2d"), or "hh:mm:ss".
fn parse_execution_duration(s: &str) -> Option<i64> {
    if let Ok(ns) = s.parse::<i64>() {
        return Some(ns);
    }
    go_duration(&days_as_hours(s)).or_else(|| hh_mm_ss(s))
}

/// Temporal rewrites each `<number>d` as `%fh` of 24×number before Go's parser sees it.
fn days_as_hours(s: &str) -> String {
    let b = s.as_bytes();
    let digits = |from: usize| b.get(from..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        let int = digits(i);
        let number_end = if int > 0 && b.get(i + int) == Some(&b'.') {
            i + int + 1 + digits(i + int + 1)
        } else if int > 0 {
            i + int
        } else if b[i] == b'.' && digits(i + 1) > 0 {
            i + 1 + digits(i + 1)
        } else {
            i
        };
        if number_end > i && b.get(number_end) == Some(&b'd') {
            if let Ok(days) = s[i..number_end].parse::<f64>() {
                out.push_str(&s[copied..i]);
                let _ = write!(out, "{:.6}h", 24.0 * days);
                i = number_end + 1;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// Go's `time.ParseDuration` (one port, shared with schedule specs).
fn go_duration(s: &str) -> Option<i64> {
    crate::schedules::spec::go_parse_duration(s).ok()
}

/// Temporal's `ParseHHMMSSDuration`: `fmt.Sscanf(d, "%d:%d:%d")` (trailing text ignored).
fn hh_mm_ss(s: &str) -> Option<i64> {
    let mut rest = s;
    let mut parts = [0i64; 3];
    for (k, part) in parts.iter_mut().enumerate() {
        if k > 0 {
            rest = rest.strip_prefix(':')?;
        }
        rest = rest.trim_start_matches([' ', '\t']);
        let sign = usize::from(rest.starts_with(['+', '-']));
        let digits = rest[sign..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        *part = rest[..sign + digits].parse().ok()?;
        rest = &rest[sign + digits..];
    }
    let [hours, minutes, seconds] = parts;
    if hours < 0 || !(0..60).contains(&minutes) || !(0..60).contains(&seconds) {
        return None;
    }
    hours.checked_mul(3600)?.checked_add(minutes * 60 + seconds)?.checked_mul(1_000_000_000)
}

/// Go's `%q`/`%#v` of a string.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c == ' ' || !(c.is_control() || c.is_whitespace()) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64: shortest digits, exponent form when the exponent is < -4 or >= 6.
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else { return scientific };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        format!("{f}")
    } else {
        format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
    }
}

// ---------------------------------------------------------------------------------------------
// SQL.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter: Postgres binds `Int` as BIGINT and `Double` as DOUBLE PRECISION.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Double(f64),
}

/// SQL boolean expression over the main table aliased `v`; values pushed to `params` and
/// referenced as ?N (SQLite) or $N (Postgres) where N = their 1-based index in `params` (params
/// may already hold values when called).
pub fn to_sql(expr: &Expr, namespace: &str, dialect: Dialect, params: &mut Vec<SqlValue>) -> String {
    let mut compiler = Compiler { namespace, dialect, params, namespace_param: None };
    compiler.expr(&push_not_down(expr, false))
}

/// The same filter with NOT only inside leaves (each leaf replaced by its exact negation), and
/// nested ANDs (ORs) merged.
pub fn push_not_down(expr: &Expr, negate: bool) -> Expr {
    let all = |items: &[Expr], and: bool| {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match push_not_down(item, negate) {
                Expr::And(inner) if and => out.extend(inner),
                Expr::Or(inner) if !and => out.extend(inner),
                other => out.push(other),
            }
        }
        out
    };
    match (expr, negate) {
        (Expr::And(items), false) | (Expr::Or(items), true) => Expr::And(all(items, true)),
        (Expr::Or(items), false) | (Expr::And(items), true) => Expr::Or(all(items, false)),
        (Expr::Not(inner), _) => push_not_down(inner, !negate),
        (Expr::Leaf(p), false) => Expr::Leaf(p.clone()),
        (Expr::Leaf(p), true) => Expr::Leaf(Predicate { attribute: p.attribute.clone(), test: p.test.negated() }),
    }
}

struct Compiler<'a> {
    namespace: &'a str,
    dialect: Dialect,
    params: &'a mut Vec<SqlValue>,
    /// One namespace parameter serves every attribute subquery.
    namespace_param: Option<String>,
}

impl Compiler<'_> {
    fn bind(&mut self, value: SqlValue) -> String {
        self.params.push(value);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.params.len()),
            Dialect::Postgres => format!("${}", self.params.len()),
        }
    }

    /// A literal for a column; a fractional one against an integer column is cast, so Postgres
    /// compares in double precision instead of binding an f64 as BIGINT.
    fn literal(&mut self, value: &SqlValue, int_column: bool) -> String {
        let placeholder = self.bind(value.clone());
        if int_column && matches!(value, SqlValue::Double(_)) {
            format!("CAST({placeholder} AS DOUBLE PRECISION)")
        } else {
            placeholder
        }
    }

    fn literals(&mut self, values: &[SqlValue], int_column: bool) -> String {
        values.iter().map(|v| self.literal(v, int_column)).collect::<Vec<_>>().join(", ")
    }

    fn expr(&mut self, expr: &Expr) -> String {
        let (items, joiner, empty) = match expr {
            Expr::And(items) => (items, " AND ", "1 = 1"),
            Expr::Or(items) => (items, " OR ", "1 = 0"),
            // Not after push_not_down; kept correct for any tree.
            Expr::Not(inner) => return format!("NOT ({})", self.expr(inner)),
            Expr::Leaf(p) => return self.leaf(p),
        };
        match items.as_slice() {
            [] => empty.to_string(),
            [one] => self.expr(one),
            _ => format!("({})", items.iter().map(|e| self.expr(e)).collect::<Vec<_>>().join(joiner)),
        }
    }

    fn leaf(&mut self, p: &Predicate) -> String {
        let t = p.attribute.value_type;
        match &p.attribute.column {
            Column::System(column) => self.condition(&format!("v.{column}"), &p.test, t.stored_as_int()),
            Column::Custom(name) => self.attribute(name, t, &p.test),
        }
    }

    /// The test on one column as SQL reads it: TRUE only for a non-NULL value that passes.
    fn condition(&mut self, column: &str, test: &Test, int_column: bool) -> String {
        match test {
            Test::Compare(op, v) => format!("{column} {} {}", op.sql(), self.literal(v, int_column)),
            Test::In(vs) if vs.is_empty() => "1 = 0".into(),
            Test::NotIn(vs) if vs.is_empty() => format!("{column} IS NOT NULL"),
            Test::In(vs) => format!("{column} IN ({})", self.literals(vs, int_column)),
            Test::NotIn(vs) => format!("{column} NOT IN ({})", self.literals(vs, int_column)),
            Test::Between(a, b) => {
                format!("{column} BETWEEN {} AND {}", self.literal(a, int_column), self.literal(b, int_column))
            }
            Test::NotBetween(a, b) => {
                format!("{column} NOT BETWEEN {} AND {}", self.literal(a, int_column), self.literal(b, int_column))
            }
            Test::StartsWith(prefix) => self.starts_with(column, prefix),
            Test::NotStartsWith(prefix) => {
                format!("({column} IS NOT NULL AND NOT ({}))", self.starts_with(column, prefix))
            }
            Test::IsNull => format!("{column} IS NULL"),
            Test::IsNotNull => format!("{column} IS NOT NULL"),
        }
    }

    /// GLOB on SQLite: case-sensitive like Postgres's LIKE, and it can use an index.
    fn starts_with(&mut self, column: &str, prefix: &str) -> String {
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.chars() {
            match (self.dialect, c) {
                (Dialect::Sqlite, '*') => pattern.push_str("[*]"),
                (Dialect::Sqlite, '?') => pattern.push_str("[?]"),
                (Dialect::Sqlite, '[') => pattern.push_str("[[]"),
                (Dialect::Postgres, '%' | '_' | '!') => {
                    pattern.push('!');
                    pattern.push(c);
                }
                _ => pattern.push(c),
            }
        }
        match self.dialect {
            Dialect::Sqlite => {
                pattern.push('*');
                format!("{column} GLOB {}", self.bind(SqlValue::Text(pattern)))
            }
            Dialect::Postgres => {
                pattern.push('%');
                format!("{column} LIKE {} ESCAPE '!'", self.bind(SqlValue::Text(pattern)))
            }
        }
    }

    /// A test on a custom or predefined attribute, over its rows in `visibility_attributes`.
    fn attribute(&mut self, name: &str, t: ValueType, test: &Test) -> String {
        let multi_valued = matches!(t, ValueType::KeywordList | ValueType::Text);
        match test {
            Test::IsNull => format!("v.run_id NOT IN ({})", self.rows(name)),
            Test::IsNotNull => format!("v.run_id IN ({})", self.rows(name)),
            // On a list or text, "not equal" is "set, and no element (token) equals".
            Test::Compare(CmpOp::Ne, v) if multi_valued => {
                self.set_without(name, t, &Test::Compare(CmpOp::Eq, v.clone()))
            }
            Test::NotIn(vs) if multi_valued => self.set_without(name, t, &Test::In(vs.clone())),
            // Single-valued: the one row of a set attribute passes the test.
            _ => format!("v.run_id IN ({})", self.matching_rows(name, t, test)),
        }
    }

    fn set_without(&mut self, name: &str, t: ValueType, test: &Test) -> String {
        let set = self.rows(name);
        let matching = self.matching_rows(name, t, test);
        format!("(v.run_id IN ({set}) AND v.run_id NOT IN ({matching}))")
    }

    fn rows(&mut self, name: &str) -> String {
        let namespace = match &self.namespace_param {
            Some(p) => p.clone(),
            None => {
                let p = self.bind(SqlValue::Text(self.namespace.to_string()));
                self.namespace_param = Some(p.clone());
                p
            }
        };
        let name = self.bind(SqlValue::Text(name.to_string()));
        format!("SELECT a.run_id FROM visibility_attributes a WHERE a.namespace = {namespace} AND a.name = {name}")
    }

    fn matching_rows(&mut self, name: &str, t: ValueType, test: &Test) -> String {
        let rows = self.rows(name);
        let condition = match (t, test) {
            // Text matches by token: some token of the literal is a token of the value.
            (ValueType::Text, Test::Compare(CmpOp::Eq, SqlValue::Text(s))) => {
                let tokens: Vec<SqlValue> = text_tokens(s).into_iter().map(SqlValue::Text).collect();
                self.condition("a.value_text", &Test::In(tokens), false)
            }
            (ValueType::Int | ValueType::Bool | ValueType::Datetime, _) => self.condition("a.value_int", test, true),
            (ValueType::Double, _) => self.condition("a.value_double", test, false),
            // A set-but-empty list's row holds NULL, which no test but IS NULL passes.
            (ValueType::Keyword | ValueType::KeywordList | ValueType::Text, _) => {
                self.condition("a.value_text", test, false)
            }
        };
        format!("{rows} AND {condition}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Custom attributes of the test namespace, one per type.
    struct Namespace(BTreeMap<&'static str, ValueType>);

    fn namespace() -> Namespace {
        use ValueType::*;
        Namespace(BTreeMap::from([
            ("Kw", Keyword),
            ("I", Int),
            ("D", Double),
            ("B", Bool),
            ("Dt", Datetime),
            ("T", Text),
            ("KL", KeywordList),
        ]))
    }

    impl Resolver for Namespace {
        fn resolve(&self, name: &str) -> Option<Attribute> {
            if let Some(t) = self.0.get(name) {
                return Some(Attribute { name: name.into(), value_type: *t, column: Column::Custom(name.into()) });
            }
            system_attributes().into_iter().chain(predefined_attributes()).find(|a| a.name == name)
        }
    }

    fn show(e: &Expr) -> String {
        let all = |items: &[Expr], joiner: &str| items.iter().map(show).collect::<Vec<_>>().join(joiner);
        match e {
            Expr::And(items) => format!("({})", all(items, " AND ")),
            Expr::Or(items) => format!("({})", all(items, " OR ")),
            Expr::Not(inner) => format!("NOT {}", show(inner)),
            Expr::Leaf(p) => {
                let v = |v: &SqlValue| match v {
                    SqlValue::Text(s) => format!("{s:?}"),
                    SqlValue::Int(n) => n.to_string(),
                    SqlValue::Double(f) => format!("{f:?}"),
                };
                let vs = |vs: &[SqlValue]| vs.iter().map(v).collect::<Vec<_>>().join(", ");
                let test = match &p.test {
                    Test::Compare(op, x) => format!("{} {}", op.sql(), v(x)),
                    Test::In(xs) => format!("IN ({})", vs(xs)),
                    Test::NotIn(xs) => format!("NOT IN ({})", vs(xs)),
                    Test::Between(a, b) => format!("BETWEEN {} AND {}", v(a), v(b)),
                    Test::NotBetween(a, b) => format!("NOT BETWEEN {} AND {}", v(a), v(b)),
                    Test::StartsWith(s) => format!("STARTS_WITH {s:?}"),
                    Test::NotStartsWith(s) => format!("NOT STARTS_WITH {s:?}"),
                    Test::IsNull => "IS NULL".into(),
                    Test::IsNotNull => "IS NOT NULL".into(),
                };
                format!("{} {test}", p.attribute.name)
            }
        }
    }

    fn parsed(q: &str) -> Result<Parsed, QueryError> {
        parse(q, &namespace())
    }

    #[test]
    fn parses_operators_types_precedence_and_quoting() {
        let cases = [
            ("Kw = 'a'", r#"Kw = "a""#),
            (r#"Kw = "a""#, r#"Kw = "a""#),
            ("`Kw` != 'a'", r#"Kw <> "a""#),
            ("Kw <> 'a'", r#"Kw <> "a""#),
            ("Kw < 'b' ", r#"Kw < "b""#),
            ("I <= 5", "I <= 5"),
            ("I > -5", "I > -5"),
            ("I >= 1.5", "I >= 1.5"),
            ("I = +7", "I = 7"),
            ("D = 3", "D = 3.0"),
            ("D = -2.5e1", "D = -25.0"),
            ("B = true", "B = 1"),
            ("B != FALSE", "B <> 0"),
            ("B in (true, false)", "B IN (1, 0)"),
            ("Kw in ('a', 'b')", r#"Kw IN ("a", "b")"#),
            ("Kw NOT IN ('a')", r#"Kw NOT IN ("a")"#),
            ("I between 1 and 2", "I BETWEEN 1 AND 2"),
            ("Kw not between 'a' and 'b'", r#"Kw NOT BETWEEN "a" AND "b""#),
            ("Kw starts_with 'a%'", r#"Kw STARTS_WITH "a%""#),
            ("Kw NOT STARTS_WITH 'a'", r#"Kw NOT STARTS_WITH "a""#),
            ("Kw is null", "Kw IS NULL"),
            ("Kw IS NOT NULL", "Kw IS NOT NULL"),
            ("KL = 'x'", r#"KL = "x""#),
            ("KL not in ('x', 'y')", r#"KL NOT IN ("x", "y")"#),
            ("T != 'Hello world'", r#"T <> "Hello world""#),
            ("Dt = '2024-01-01T00:00:00Z'", "Dt = 1704067200000000000"),
            ("Dt > '2024-01-01T02:00:00.5+02:00'", "Dt > 1704067200500000000"),
            ("Dt < '2024-01-01T00:00:00.123456789123Z'", "Dt < 1704067200123456789"),
            ("Dt < 5", "Dt < 5"),
            ("StartTime > '9999-01-01T00:00:00Z'", "StartTime > 9223372036854775807"),
            ("ExecutionStatus = 'Running'", "ExecutionStatus = 1"),
            ("ExecutionStatus = 'WORKFLOW_EXECUTION_STATUS_TIMED_OUT'", "ExecutionStatus = 7"),
            ("ExecutionStatus in (2, 'Failed')", "ExecutionStatus IN (2, 3)"),
            ("ExecutionStatus between 'Running' and 'Failed'", "ExecutionStatus BETWEEN 1 AND 3"),
            ("ExecutionDuration > '1h30m'", "ExecutionDuration > 5400000000000"),
            ("ExecutionDuration < '1.5s'", "ExecutionDuration < 1500000000"),
            ("ExecutionDuration = '300ms'", "ExecutionDuration = 300000000"),
            ("ExecutionDuration = '2h45m10s'", "ExecutionDuration = 9910000000000"),
            ("ExecutionDuration = '-1.5h'", "ExecutionDuration = -5400000000000"),
            ("ExecutionDuration = '1d'", "ExecutionDuration = 86400000000000"),
            ("ExecutionDuration >= '01:02:03'", "ExecutionDuration >= 3723000000000"),
            ("ExecutionDuration = '42'", "ExecutionDuration = 42"),
            ("ExecutionDuration = 42", "ExecutionDuration = 42"),
            ("Kw = 'a' or I = 1 and D = 2", r#"(Kw = "a" OR (I = 1 AND D = 2.0))"#),
            ("(Kw = 'a' or I = 1) and D = 2", r#"((Kw = "a" OR I = 1) AND D = 2.0)"#),
            ("not Kw = 'a' and I = 1", r#"(NOT Kw = "a" AND I = 1)"#),
            ("NOT (Kw = 'a' OR I = 1)", r#"NOT (Kw = "a" OR I = 1)"#),
            ("Kw = 'a' && I = 1 || D = 2", r#"((Kw = "a" AND I = 1) OR D = 2.0)"#),
            ("Kw='a'and I=1 AND D=2", r#"(Kw = "a" AND I = 1 AND D = 2.0)"#),
            ("Kw = 'it''s'", r#"Kw = "it's""#),
            (r"Kw = 'it\'s'", r#"Kw = "it's""#),
            (r#"Kw = "say ""hi"" \"now\"""#, r#"Kw = "say \"hi\" \"now\"""#),
            (r"Kw = 'a\nb\%\_\\'", r#"Kw = "a\nb%_\\""#),
            ("Kw = 'é'", r#"Kw = "é""#),
            ("`Kw``` = 'a'", r#"Kw = "a""#),
            ("ScheduleId = 's'", r#"WorkflowId = "s""#),
            ("TemporalScheduleId = 's'", r#"WorkflowId = "s""#),
            ("TemporalWorkflowId = 'w'", r#"WorkflowId = "w""#),
            ("ChangeVersion = 'v'", r#"TemporalChangeVersion = "v""#),
            ("Kw = 'a' -- trailing comment", r#"Kw = "a""#),
            ("Kw = 'a' /* c */ and I = 1;", r#"(Kw = "a" AND I = 1)"#),
        ];
        for (query, want) in cases {
            let got = parsed(query).unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(got.filter.as_ref().map(show).as_deref(), Some(want), "{query}");
            assert!(got.group_by.is_none(), "{query}");
        }
    }

    #[test]
    fn empty_group_by_and_division() {
        for q in ["", "   "] {
            let p = parsed(q).unwrap();
            assert!(p.filter.is_none() && p.group_by.is_none() && !p.names_namespace_division);
        }
        let p = parsed("group by ExecutionStatus").unwrap();
        assert!(p.filter.is_none());
        assert_eq!(p.group_by.map(|a| a.column), Some(Column::System("status")));
        let p = parsed("Kw = 'a' GROUP BY `ExecutionStatus`").unwrap();
        assert_eq!(p.group_by.map(|a| a.name).as_deref(), Some(EXECUTION_STATUS));
        assert!(p.filter.is_some() && !p.names_namespace_division);
        assert!(parsed("group by TemporalNamespaceDivision").unwrap().names_namespace_division);
        assert!(parsed("TemporalNamespaceDivision is null").unwrap().names_namespace_division);
        assert!(parsed("NamespaceDivision = 'x' or Kw = 'a'").unwrap().names_namespace_division);
        assert_eq!(group_by_not_allowed().to_string(), "invalid query: operation is not supported: 'GROUP BY' clause");
    }

    /// Messages as the Temporal 1.32 dev server (SQLite visibility) gives them.
    #[test]
    fn rejects_with_temporal_messages() {
        let inv = |m: &str| format!("invalid query: invalid expression: {m}");
        let uns = |m: &str| format!("invalid query: operation is not supported: {m}");
        let value_type = |rest: &str| inv(&format!("invalid value type for search attribute {rest}"));
        let op = |rest: &str| uns(&format!("operator {rest}"));
        let syntax = |rest: &str| format!("invalid query: malformed SQL query: syntax error at position {rest}");
        let cases: Vec<(&str, String)> = vec![
            ("Foo = 'a'", "invalid query: invalid search attribute: Foo".into()),
            ("kw = 'a'", "invalid query: invalid search attribute: kw".into()),
            ("TemporalKw = 'a'", "invalid query: invalid search attribute: TemporalKw".into()),
            ("B between true and false", inv("cannot do range condition on search attribute 'B' of type Bool")),
            (
                "KL not between 'a' and 'b'",
                inv("cannot do range condition on search attribute 'KL' of type KeywordList"),
            ),
            ("I = 'abc'", value_type(r#"I of type Int: "abc" (type: string)"#)),
            ("I in (1, 'b')", value_type(r#"I of type Int: "b" (type: string)"#)),
            (r"I = 'a\0b'", value_type(r#"I of type Int: "a\x00b" (type: string)"#)),
            ("I = true", value_type("I of type Int: true (type: bool)")),
            ("Kw = 5", value_type("Kw of type Keyword: 5 (type: int64)")),
            ("Kw = true", value_type("Kw of type Keyword: true (type: bool)")),
            ("Kw = 1234567.0", value_type("Kw of type Keyword: 1.234567e+06 (type: float64)")),
            ("Kw = 123456.0", value_type("Kw of type Keyword: 123456 (type: float64)")),
            ("Kw = 1e20", value_type("Kw of type Keyword: 1e+20 (type: float64)")),
            ("Kw = 0.00001", value_type("Kw of type Keyword: 1e-05 (type: float64)")),
            ("Kw = 0.0001", value_type("Kw of type Keyword: 0.0001 (type: float64)")),
            ("KL = 5", value_type("KL of type KeywordList: 5 (type: int64)")),
            ("D = 'x'", value_type(r#"D of type Double: "x" (type: string)"#)),
            ("B = 'true'", value_type(r#"B of type Bool: "true" (type: string)"#)),
            ("B = 1", value_type("B of type Bool: 1 (type: int64)")),
            ("Dt = true", value_type("Dt of type Datetime: true (type: bool)")),
            ("Dt = 1.5", value_type("Dt of type Datetime: 1.5 (type: float64)")),
            ("Dt = '2024-01-01'", inv("unable to parse datetime '2024-01-01'")),
            ("Dt = '2024-01-01t00:00:00Z'", inv("unable to parse datetime '2024-01-01t00:00:00Z'")),
            ("Dt between 'x' and 5", inv("unable to parse datetime 'x'")),
            ("T < 'a'", op("'<' not supported for Text type search attribute 'T'")),
            ("T in ('a','b')", op("'IN' not supported for Text type search attribute 'T'")),
            ("KL > 'a'", op("'>' not supported for KeywordList type search attribute 'KL'")),
            ("KL starts_with 'a'", op("'STARTS_WITH' not supported for KeywordList type search attribute 'KL'")),
            ("I starts_with 'a'", value_type(r#"I of type Int: "a" (type: string)"#)),
            ("I starts_with 1", op("'STARTS_WITH' not supported for Int type search attribute 'I'")),
            ("Kw like 'a%'", op("'LIKE' not supported for Keyword type search attribute 'Kw'")),
            ("Kw not like 'a' escape '!'", op("'NOT LIKE' not supported for Keyword type search attribute 'Kw'")),
            ("Kw regexp 'a'", op("'REGEXP' not supported for Keyword type search attribute 'Kw'")),
            ("Kw <=> 'a'", op("'<=>' not supported for Keyword type search attribute 'Kw'")),
            ("T = ''", inv("no tokens found filtering on Text type search attribute T")),
            ("ORDER BY StartTime", uns("'ORDER BY' clause")),
            ("Kw = 'a' order by StartTime desc", uns("'ORDER BY' clause")),
            ("order by Foo", "invalid query: invalid search attribute: Foo".into()),
            ("Kw = 'a' order by StartTime, Foo", "invalid query: invalid search attribute: Foo".into()),
            ("Kw = 'a' limit 5", uns("'LIMIT' clause")),
            ("Foo = 1 limit 5, 2", uns("'LIMIT' clause")),
            (
                "Kw = Kw",
                uns(r#"column name on the right side of comparison expression (did you forget to quote "Kw"?)"#),
            ),
            ("ExecutionStatus = 'running'", inv("invalid ExecutionStatus value 'running'")),
            ("ExecutionStatus in ('Running', 99)", inv("invalid ExecutionStatus value 99")),
            ("ExecutionStatus = 1.5", inv("unexpected value type float64 for search attribute ExecutionStatus")),
            ("ExecutionStatus = true", value_type("ExecutionStatus of type Keyword: true (type: bool)")),
            (
                "ExecutionStatus starts_with 'Running'",
                inv(r#"right-hand side of "starts_with" operator must be a literal string (got: Running)"#),
            ),
            ("ExecutionDuration = 'abc'", inv("invalid duration value for search attribute ExecutionDuration: abc")),
            ("ExecutionDuration = 1.5", inv("unexpected value type float64 for search attribute ExecutionDuration")),
            ("ExecutionDuration = true", value_type("ExecutionDuration of type Int: true (type: bool)")),
            ("lower(Kw) = 'a'", inv("must be a column name but was *sqlparser.FuncExpr")),
            ("lower(Kw)", uns("function expression")),
            ("Kw = lower('a')", uns("nested func")),
            ("Kw", inv("incomplete expression")),
            ("Kw is not true", inv("'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'")),
            ("'a' = Kw", inv("must be a column name but was *sqlparser.SQLVal")),
            ("(Kw = 'a') is null", inv("must be a column name but was *sqlparser.ParenExpr")),
            ("Kw = 'a' + 1", inv("unexpected value type *sqlparser.BinaryExpr")),
            ("Kw = null", inv("unexpected value type *sqlparser.NullVal")),
            ("Kw in (null)", inv("unexpected value type *sqlparser.NullVal")),
            ("Kw = ('a')", inv("unexpected value type *sqlparser.ParenExpr")),
            ("!(Kw = 'a')", uns("expression of type *sqlparser.UnaryExpr")),
            ("I = -(5)", inv(r#"unary operator not supported in "-(5)""#)),
            ("I = 0x10", inv(r#"unable to parse value "0x10""#)),
            ("I = 1e", inv(r#"unable to parse value "1e""#)),
            ("I = !5", uns(r#"unary operator "!""#)),
            ("I = +'a'", inv(r#"unary operator not supported in "+'a'""#)),
            ("-Kw = 'a'", inv("must be a column name but was *sqlparser.UnaryExpr")),
            ("Kw = 'a' -> 'b'", syntax("39")),
            ("Kw = default", syntax("40 near 'default'")),
            ("Kw = 1e400", inv(r#"unable to parse value "1e400""#)),
            ("Kw = 'a' group by ExecutionStatus, WorkflowType", uns("'GROUP BY' clause supports only a single field")),
            ("group by WorkflowType", uns("'GROUP BY' clause is not supported for search attribute WorkflowType")),
            ("group by 1", inv("must be a column name but was *sqlparser.SQLVal")),
            ("group by Foo", "invalid query: invalid search attribute: Foo".into()),
            ("Kw = ", syntax("32")),
            ("Kw = 'a' and", syntax("40")),
            ("Kw == 'a'", syntax("33")),
            ("(Kw = 'a'", syntax("37")),
            ("Kw = 'a')", syntax("37")),
            ("Kw = 'a", syntax("35 near 'a'")),
            ("Kw in ()", syntax("36")),
            ("Kw in 'a'", syntax("37 near 'a'")),
            ("Kw in ('a',)", syntax("40")),
            ("Kw = 'a' or or", syntax("42 near 'or'")),
            ("and Kw = 'a'", syntax("31 near 'and'")),
            ("not", syntax("31")),
            ("Kw = 'a' and not", syntax("44")),
            ("Kw = 'a' Kw = 'b'", syntax("39 near 'Kw'")),
            ("Kw = 'a' ; Kw = 'b'", syntax("41 near 'Kw'")),
            ("Kw = 'a' XOR I = 1", syntax("40 near 'xor'")),
            ("`` = 'a'", syntax("30")),
            ("`Kw = 'a'", syntax("37 near 'Kw = 'a''")),
            ("Kw = 5x", syntax("34 near '5'")),
            ("Kw = 1.2.3", syntax("38 near '.3'")),
            ("Kw = 'a' group by", syntax("45")),
            ("Kw = 'a' group by ExecutionStatus asc", syntax("65 near 'asc'")),
            ("Kw = 'a' escape 'b'", syntax("43 near 'escape'")),
            ("order by StartTime group by ExecutionStatus", syntax("46 near 'group'")),
        ];
        for (query, want) in cases {
            match parsed(query) {
                Ok(p) => panic!("{query}: accepted as {:?}", p.filter.as_ref().map(show)),
                Err(e) => assert_eq!(e.to_string(), want, "{query}"),
            }
        }
    }

    #[test]
    fn deep_and_long_queries_are_bounded() {
        let deep = format!("{}Kw = 'a'{}", "(".repeat(300), ")".repeat(300));
        let e = parsed(&deep).unwrap_err().to_string();
        assert!(e.starts_with("invalid query: malformed SQL query: max nesting level reached at position"), "{e}");
        assert!(parsed(&"not ".repeat(1000)).is_err());
        assert!(parsed(&format!("{}Kw = 'a'{}", "(".repeat(60), ")".repeat(60))).is_ok());
        // Long chains stay flat: no deep recursion when converting, compiling or dropping.
        let long = vec!["Kw = 'a'"; 20_000].join(" or ");
        let p = parsed(&long).unwrap();
        let sql = to_sql(&p.filter.unwrap(), "default", Dialect::Sqlite, &mut Vec::new());
        assert!(sql.len() > 20_000);
    }

    #[test]
    fn literal_formats() {
        assert_eq!(parse_datetime("2024-02-29T23:59:59.000000001-01:30"), Some(1_709_256_599_000_000_001));
        // Go's general parser: a one-digit hour, an offset of 24:60.
        assert_eq!(parse_datetime("2024-01-01T1:00:00+24:60"), Some(1_703_980_800_000_000_000));
        for bad in [
            "2024-01-01T1:0:00Z",
            "2024-01-01T00:00:00+25:00",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+2:00",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert_eq!(parse_execution_duration("1.5d"), Some(129_600_000_000_000));
        assert_eq!(parse_execution_duration("1h0.5m"), Some(3_630_000_000_000));
        assert_eq!(parse_execution_duration("0"), Some(0));
        assert_eq!(parse_execution_duration("90µs"), Some(90_000));
        for bad in ["", "h", "1", "1x", ".h", "01:60:00", "-1:00:00", "3000000h"] {
            // "1" is a valid integer; here it goes through the duration parsers only.
            assert_eq!(go_duration(&days_as_hours(bad)).or_else(|| hh_mm_ss(bad)), None, "{bad}");
        }
        assert_eq!(go_quote("a\"\\\tü\u{1}"), r#""a\"\\\tü\x01""#);
        assert_eq!(go_float(-1.5e-7), "-1.5e-07");
        assert_eq!(text_tokens("Hello, wörld-42!"), ["hello", "wörld", "42"]);
        assert_eq!(ValueType::from_i32(7), Some(ValueType::KeywordList));
        assert_eq!(ValueType::from_i32(0), None);
        assert_eq!(ValueType::Double.number(), 4);
    }

    #[test]
    fn postgres_text() {
        let p = parsed("WorkflowId starts_with 'a_%!' and not (I = 1.5 or KL != 'x')").unwrap();
        let mut params = vec![SqlValue::Text("default".into())];
        let sql = to_sql(&p.filter.unwrap(), "default", Dialect::Postgres, &mut params);
        assert_eq!(
            sql,
            "(v.workflow_id LIKE $2 ESCAPE '!' \
             AND v.run_id IN (SELECT a.run_id FROM visibility_attributes a WHERE a.namespace = $3 AND a.name = $4 \
             AND a.value_int <> CAST($5 AS DOUBLE PRECISION)) \
             AND v.run_id IN (SELECT a.run_id FROM visibility_attributes a WHERE a.namespace = $3 AND a.name = $6 \
             AND a.value_text = $7))"
        );
        assert_eq!(params[1], SqlValue::Text("a!_!%!!%".into()));
        assert_eq!(params[4], SqlValue::Double(1.5));
        assert_eq!(params.len(), 7);
    }

    // --- SQL against SQLite ------------------------------------------------------------------

    enum Value {
        Keyword(&'static str),
        Int(i64),
        Double(f64),
        Bool(bool),
        Datetime(i64),
        Text(&'static str),
        List(&'static [&'static str]),
    }

    const JAN_1_2024_NS: i64 = 1_704_067_200_000_000_000;

    fn database() -> rusqlite::Connection {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE visibility (namespace TEXT NOT NULL, run_id TEXT NOT NULL, workflow_id TEXT,
                workflow_type TEXT, status INTEGER, task_queue TEXT, start_time INTEGER, execution_time INTEGER,
                close_time INTEGER, execution_duration INTEGER, history_length INTEGER, history_size_bytes INTEGER,
                state_transition_count INTEGER, parent_workflow_id TEXT, parent_run_id TEXT, root_workflow_id TEXT,
                root_run_id TEXT, namespace_division TEXT);
             CREATE TABLE visibility_attributes (namespace TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT NOT NULL,
                value_text TEXT, value_int INTEGER, value_double REAL);",
        )
        .unwrap();
        // (namespace, run id, workflow id, status, start time, close time)
        let runs = [
            ("default", "r1", "order-1", 1, 1000, None),
            ("default", "r2", "order-2", 2, 2000, Some(5000)),
            ("default", "r3", "ship*1", 3, 3000, Some(4000)),
            ("default", "r4", "Order-3", 1, 4000, None),
            ("other", "r3", "x", 1, 0, None),
        ];
        for (namespace, run_id, workflow_id, status, start_time, close_time) in runs {
            db.execute(
                "INSERT INTO visibility (namespace, run_id, workflow_id, status, start_time, close_time,
                    execution_duration) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6 - ?5)",
                rusqlite::params![namespace, run_id, workflow_id, status, start_time, close_time],
            )
            .unwrap();
        }
        use Value::*;
        let attributes = [
            ("default", "r1", "Kw", Keyword("alpha")),
            ("default", "r1", "I", Int(5)),
            ("default", "r1", "B", Bool(true)),
            ("default", "r1", "KL", List(&["x", "y"])),
            ("default", "r1", "T", Text("Hello, World")),
            ("default", "r1", "Dt", Datetime(JAN_1_2024_NS)),
            ("default", "r2", "Kw", Keyword("beta")),
            ("default", "r2", "I", Int(7)),
            ("default", "r2", "D", Double(1.5)),
            ("default", "r2", "KL", List(&[])),
            ("default", "r2", "T", Text("goodbye world")),
            // Another namespace's rows on r3's run id must not leak into "default".
            ("other", "r3", "Kw", Keyword("alpha")),
            ("other", "r3", "KL", List(&["x"])),
        ];
        // As the writer stores them: a row per value, element or token; NULLs when set but empty.
        for (namespace, run_id, name, value) in attributes {
            let mut rows: Vec<(Option<String>, Option<i64>, Option<f64>)> = match value {
                Keyword(s) => vec![(Some(s.into()), None, None)],
                Int(n) | Datetime(n) => vec![(None, Some(n), None)],
                Bool(b) => vec![(None, Some(i64::from(b)), None)],
                Double(f) => vec![(None, None, Some(f))],
                Text(s) => text_tokens(s).into_iter().map(|t| (Some(t), None, None)).collect(),
                List(items) => items.iter().map(|s| (Some(s.to_string()), None, None)).collect(),
            };
            if rows.is_empty() {
                rows.push((None, None, None));
            }
            for (text, int, double) in rows {
                db.execute(
                    "INSERT INTO visibility_attributes VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![namespace, run_id, name, text, int, double],
                )
                .unwrap();
            }
        }
        db
    }

    fn matching(db: &rusqlite::Connection, query: &str) -> Vec<String> {
        let parsed = parse(query, &namespace()).unwrap_or_else(|e| panic!("{query}: {e}"));
        // As the caller does: its own parameter first.
        let mut params = vec![SqlValue::Text("default".into())];
        let filter = parsed.filter.map_or("1 = 1".into(), |f| to_sql(&f, "default", Dialect::Sqlite, &mut params));
        let sql = format!("SELECT v.run_id FROM visibility v WHERE v.namespace = ?1 AND ({filter}) ORDER BY v.run_id");
        let values = params.into_iter().map(|p| match p {
            SqlValue::Text(s) => rusqlite::types::Value::Text(s),
            SqlValue::Int(n) => rusqlite::types::Value::Integer(n),
            SqlValue::Double(f) => rusqlite::types::Value::Real(f),
        });
        let mut statement = db.prepare(&sql).unwrap_or_else(|e| panic!("{query}: {sql}: {e}"));
        let rows = statement.query_map(rusqlite::params_from_iter(values), |row| row.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn sql_matches_the_right_runs() {
        let db = database();
        let cases: &[(&str, &[&str])] = &[
            ("", &["r1", "r2", "r3", "r4"]),
            ("Kw = 'alpha'", &["r1"]),
            ("Kw != 'alpha'", &["r2"]),
            ("NOT Kw = 'alpha'", &["r2"]),
            ("NOT (Kw = 'alpha' OR I = 7)", &[]),
            ("NOT NOT Kw = 'alpha'", &["r1"]),
            ("Kw IS NULL", &["r3", "r4"]),
            ("NOT Kw IS NULL", &["r1", "r2"]),
            ("Kw IS NOT NULL AND NOT (I > 5)", &["r1"]),
            ("Kw < 'b'", &["r1"]),
            ("Kw between 'a' and 'b'", &["r1"]),
            ("Kw STARTS_WITH 'al'", &["r1"]),
            ("Kw NOT STARTS_WITH 'al'", &["r2"]),
            ("NOT Kw STARTS_WITH 'al'", &["r2"]),
            ("I BETWEEN 5 AND 6", &["r1"]),
            ("I NOT BETWEEN 5 AND 6", &["r2"]),
            ("NOT I BETWEEN 5 AND 6", &["r2"]),
            ("I IN (5, 7)", &["r1", "r2"]),
            ("I NOT IN (5)", &["r2"]),
            ("I = 5.0", &["r1"]),
            ("I < 5.5", &["r1"]),
            ("D > 1", &["r2"]),
            ("D != 1.5", &[]),
            ("B = true", &["r1"]),
            ("B != true", &[]),
            ("B = false", &[]),
            ("KL = 'x'", &["r1"]),
            ("KL != 'x'", &["r2"]),
            ("NOT KL = 'x'", &["r2"]),
            ("KL IN ('y', 'z')", &["r1"]),
            ("KL NOT IN ('y')", &["r2"]),
            ("NOT KL NOT IN ('y')", &["r1"]),
            ("KL IS NULL", &["r3", "r4"]),
            ("KL IS NOT NULL", &["r1", "r2"]),
            ("T = 'hello'", &["r1"]),
            ("T = 'WORLD'", &["r1", "r2"]),
            ("T = 'hello there'", &["r1"]),
            ("T != 'hello'", &["r2"]),
            ("T != 'world'", &[]),
            ("NOT T = 'goodbye'", &["r1"]),
            // Temporal accepts these (it splits on spaces); no token can match.
            ("T = '!!'", &[]),
            ("T != '!!'", &["r1", "r2"]),
            ("Dt > '2023-12-31T00:00:00Z'", &["r1"]),
            ("Dt = '2024-01-01T02:00:00+02:00'", &["r1"]),
            ("Dt IS NULL", &["r2", "r3", "r4"]),
            ("ExecutionStatus = 'Running'", &["r1", "r4"]),
            ("ExecutionStatus != 'Running'", &["r2", "r3"]),
            ("ExecutionStatus IN ('Completed', 3)", &["r2", "r3"]),
            ("ExecutionStatus = 'WORKFLOW_EXECUTION_STATUS_FAILED'", &["r3"]),
            ("CloseTime IS NULL", &["r1", "r4"]),
            ("CloseTime > 0", &["r2", "r3"]),
            ("NOT CloseTime < 4500", &["r2"]),
            ("ExecutionDuration > '2us'", &["r2"]),
            ("ExecutionDuration <= '00:00:01'", &["r2", "r3"]),
            ("WorkflowId STARTS_WITH 'order'", &["r1", "r2"]),
            ("WorkflowId NOT STARTS_WITH 'order'", &["r3", "r4"]),
            ("WorkflowId STARTS_WITH 'ship*'", &["r3"]),
            ("WorkflowId STARTS_WITH 'ship?'", &[]),
            ("WorkflowId STARTS_WITH ''", &["r1", "r2", "r3", "r4"]),
            ("ParentWorkflowId IS NULL AND NOT ParentWorkflowId = 'p'", &[]),
            ("(Kw = 'alpha' OR Kw = 'beta') AND ExecutionStatus = 'Completed'", &["r2"]),
            ("Kw = 'alpha' OR I = 7 AND D = 1.5", &["r1", "r2"]),
            ("NOT (ExecutionStatus = 'Running' AND Kw IS NULL)", &["r1", "r2", "r3"]),
        ];
        for (query, want) in cases {
            assert_eq!(matching(&db, query), *want, "{query}");
        }
    }
}
