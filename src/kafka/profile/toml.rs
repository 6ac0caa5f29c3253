//! A TOML reader for the config file: tables (`[a.b]`, dotted and quoted
//! keys), basic and literal strings with TOML's escapes, integers,
//! booleans, arrays (over several lines, with comments), as TOML 1.0
//! defines them. What a profile never holds (floats, dates and times,
//! inline tables, arrays of tables, multi-line strings) is refused with
//! its line, never misread.

use std::collections::BTreeMap;

/// A value with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Its line, from 1.
    pub line: usize,
}

/// A TOML value of the kinds weir reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A boolean.
    Bool(bool),
    /// An array.
    Array(Vec<Value>),
    /// A table.
    Table(BTreeMap<String, Entry>),
}

impl Value {
    /// The kind of value, for messages: "a string".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::String(_) => "a string",
            Self::Integer(_) => "an integer",
            Self::Bool(_) => "a boolean",
            Self::Array(_) => "an array",
            Self::Table(_) => "a table",
        }
    }
}

/// Where and why the text is not TOML weir reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

type Result<T> = std::result::Result<T, Error>;

/// Parses a whole document into its root table.
///
/// # Errors
///
/// The first thing that is not TOML, or not of the kinds read here.
pub fn parse(text: &str) -> Result<BTreeMap<String, Entry>> {
    let mut parser = Parser {
        text,
        pos: 0,
        line: 1,
    };
    let mut root = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    let mut headers: Vec<Vec<String>> = Vec::new();
    loop {
        parser.skip_blank_lines();
        let Some(c) = parser.peek() else {
            return Ok(root);
        };
        let line = parser.line;
        if c == '[' {
            parser.bump();
            if parser.peek() == Some('[') {
                return Err(parser.error("arrays of tables ([[...]]) are not supported"));
            }
            let path = parser.key_path()?;
            parser.expect(']')?;
            parser.end_of_line()?;
            if headers.contains(&path) {
                return Err(parser.error(format!("table [{}] is defined twice", path.join("."))));
            }
            table_at(&mut root, &path, line)?;
            headers.push(path.clone());
            current = path;
        } else {
            let path = parser.key_path()?;
            parser.skip_spaces();
            parser.expect('=')?;
            parser.skip_spaces();
            let value = parser.value()?;
            parser.end_of_line()?;
            let (last, parents) = path.split_last().expect("a key path is never empty");
            let mut full = current.clone();
            full.extend_from_slice(parents);
            let table = table_at(&mut root, &full, line)?;
            if table.contains_key(last) {
                return Err(Error {
                    line,
                    message: format!("key \"{}\" is defined twice", path.join(".")),
                });
            }
            table.insert(last.clone(), Entry { value, line });
        }
    }
}

/// The table at `path` below `root`, created as needed.
fn table_at<'a>(
    root: &'a mut BTreeMap<String, Entry>,
    path: &[String],
    line: usize,
) -> Result<&'a mut BTreeMap<String, Entry>> {
    let mut table = root;
    for key in path {
        let entry = table.entry(key.clone()).or_insert_with(|| Entry {
            value: Value::Table(BTreeMap::new()),
            line,
        });
        match &mut entry.value {
            Value::Table(inner) => table = inner,
            other => {
                return Err(Error {
                    line,
                    message: format!("\"{key}\" is already {}, not a table", other.kind()),
                });
            }
        }
    }
    Ok(table)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error {
            line: self.line,
            message: message.into(),
        }
    }

    fn expect(&mut self, wanted: char) -> Result<()> {
        match self.peek() {
            Some(c) if c == wanted => {
                self.bump();
                Ok(())
            }
            Some('\n' | '\r') | None => {
                Err(self.error(format!("expected '{wanted}' before the end of the line")))
            }
            Some(c) => Err(self.error(format!("expected '{wanted}', found '{c}'"))),
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some('#') {
            while !matches!(self.peek(), Some('\n') | None) {
                self.bump();
            }
        }
    }

    /// Spaces, comments and line ends, as between array items.
    fn skip_blank_lines(&mut self) {
        loop {
            self.skip_spaces();
            self.skip_comment();
            match self.peek() {
                Some('\n') => {
                    self.bump();
                }
                Some('\r') if self.text[self.pos..].starts_with("\r\n") => {
                    self.bump();
                }
                _ => return,
            }
        }
    }

    /// Only spaces and a comment may follow a key's value or a header.
    fn end_of_line(&mut self) -> Result<()> {
        self.skip_spaces();
        self.skip_comment();
        match self.peek() {
            None | Some('\n') => Ok(()),
            Some('\r') if self.text[self.pos..].starts_with("\r\n") => Ok(()),
            Some(c) => Err(self.error(format!(
                "unexpected '{c}' after the value (one key = value per line)"
            ))),
        }
    }

    /// `a.b."c d"`, with spaces allowed around the dots.
    fn key_path(&mut self) -> Result<Vec<String>> {
        let mut path = Vec::new();
        loop {
            self.skip_spaces();
            path.push(self.key()?);
            self.skip_spaces();
            if self.peek() != Some('.') {
                return Ok(path);
            }
            self.bump();
        }
    }

    fn key(&mut self) -> Result<String> {
        match self.peek() {
            Some('"') => {
                self.bump();
                self.basic_string()
            }
            Some('\'') => {
                self.bump();
                self.literal_string()
            }
            _ => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    self.bump();
                }
                if self.pos == start {
                    return Err(match self.peek() {
                        Some(c) if c != '\n' && c != '\r' => {
                            self.error(format!("expected a key, found '{c}'"))
                        }
                        _ => self.error("expected a key"),
                    });
                }
                Ok(self.text[start..self.pos].to_owned())
            }
        }
    }

    fn value(&mut self) -> Result<Value> {
        match self.peek() {
            Some('"') => {
                if self.text[self.pos..].starts_with("\"\"\"") {
                    return Err(self.error("multi-line strings are not supported"));
                }
                self.bump();
                self.basic_string().map(Value::String)
            }
            Some('\'') => {
                if self.text[self.pos..].starts_with("'''") {
                    return Err(self.error("multi-line strings are not supported"));
                }
                self.bump();
                self.literal_string().map(Value::String)
            }
            Some('[') => {
                self.bump();
                self.array()
            }
            Some('{') => Err(self.error("inline tables ({...}) are not supported: use a [table]")),
            Some(_) => self.scalar(),
            None => Err(self.error("expected a value")),
        }
    }

    fn array(&mut self) -> Result<Value> {
        let mut items = Vec::new();
        loop {
            self.skip_blank_lines();
            if self.peek() == Some(']') {
                self.bump();
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_blank_lines();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {}
                Some(c) => {
                    return Err(
                        self.error(format!("expected ',' or ']' in the array, found '{c}'"))
                    );
                }
                None => return Err(self.error("the array is not closed with ']'")),
            }
        }
    }

    /// `true`, `false` or an integer; floats and dates are refused.
    fn scalar(&mut self) -> Result<Value> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || "_+-.:".contains(c)) {
            self.bump();
        }
        let word = &self.text[start..self.pos];
        match word {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            "" => {
                return Err(match self.peek() {
                    Some(c) if c != '\n' && c != '\r' => {
                        self.error(format!("expected a value, found '{c}'"))
                    }
                    _ => self.error("expected a value"),
                });
            }
            _ => {}
        }
        let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
        let is_decimal = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
            && !digits.starts_with('_')
            && !digits.ends_with('_')
            && !digits.contains("__")
            && (digits == "0" || !digits.starts_with('0'));
        if is_decimal {
            let clean: String = word.chars().filter(|&c| c != '_').collect();
            return clean
                .parse()
                .map(Value::Integer)
                .map_err(|_| self.error(format!("{word} is out of range for an integer")));
        }
        let first = word.chars().next().unwrap_or(' ');
        if first.is_ascii_digit() || first == '+' || first == '-' || word == "inf" || word == "nan"
        {
            Err(self.error(format!(
                "{word}: only whole decimal numbers are supported (no floats, dates, hex)"
            )))
        } else {
            Err(self.error(format!("{word} is not a value (a string needs quotes)")))
        }
    }

    /// After the opening `"`.
    fn basic_string(&mut self) -> Result<String> {
        let mut out = String::new();
        loop {
            if self.peek() == Some('\n') {
                return Err(self.error("the string is not closed with '\"'"));
            }
            match self.bump() {
                None | Some('\n') => return Err(self.error("the string is not closed with '\"'")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape()?),
                Some(c) if c != '\t' && c.is_control() => {
                    return Err(self.error("a control character in a string must be escaped"));
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char> {
        let c = match self.bump() {
            Some('b') => '\u{8}',
            Some('t') => '\t',
            Some('n') => '\n',
            Some('f') => '\u{c}',
            Some('r') => '\r',
            Some('"') => '"',
            Some('\\') => '\\',
            Some(u @ ('u' | 'U')) => {
                let len = if u == 'u' { 4 } else { 8 };
                let hex = self.text.get(self.pos..self.pos + len).unwrap_or_default();
                let code = u32::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| hex.len() == len && hex.bytes().all(|b| b.is_ascii_hexdigit()));
                self.pos += hex.len();
                return code.and_then(char::from_u32).ok_or_else(|| {
                    self.error(format!("\\{u}{hex} is not a Unicode scalar value"))
                });
            }
            Some(c) => return Err(self.error(format!("\\{c} is not an escape TOML knows"))),
            None => return Err(self.error("the string is not closed with '\"'")),
        };
        Ok(c)
    }

    /// After the opening `'`: no escapes.
    fn literal_string(&mut self) -> Result<String> {
        let start = self.pos;
        loop {
            if self.peek() == Some('\n') {
                return Err(self.error("the string is not closed with \"'\""));
            }
            match self.bump() {
                None | Some('\n') => return Err(self.error("the string is not closed with \"'\"")),
                Some('\'') => return Ok(self.text[start..self.pos - 1].to_owned()),
                Some(c) if c != '\t' && c.is_control() => {
                    return Err(self.error("a control character cannot be in a literal string"));
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(root: &'a BTreeMap<String, Entry>, path: &[&str]) -> &'a Value {
        let (last, parents) = path.split_last().unwrap();
        let mut table = root;
        for key in parents {
            match &table[*key].value {
                Value::Table(t) => table = t,
                other => panic!("{key} is {other:?}"),
            }
        }
        &table[*last].value
    }

    #[test]
    fn reads_toml_as_the_spec_writes_it() {
        let root = parse(
            "top = 1\r\n[a . \"b c\".'d']  # comment\nx = \"q\\\"\\u00e9\\t\\\\\"\n\
             y = 'C:\\path'\nz = [ 1, -2_000,\n  # in between\n  +3, ]\nt = true\n\
             dotted.key = false\nempty = \"\"\n[e]\n",
        )
        .unwrap();
        assert_eq!(get(&root, &["top"]), &Value::Integer(1));
        assert_eq!(
            get(&root, &["a", "b c", "d", "x"]),
            &Value::String("q\"é\t\\".into())
        );
        assert_eq!(
            get(&root, &["a", "b c", "d", "y"]),
            &Value::String("C:\\path".into())
        );
        assert_eq!(
            get(&root, &["a", "b c", "d", "z"]),
            &Value::Array(vec![
                Value::Integer(1),
                Value::Integer(-2000),
                Value::Integer(3)
            ])
        );
        assert_eq!(get(&root, &["a", "b c", "d", "t"]), &Value::Bool(true));
        assert_eq!(
            get(&root, &["a", "b c", "d", "dotted", "key"]),
            &Value::Bool(false)
        );
        assert_eq!(
            get(&root, &["a", "b c", "d", "empty"]),
            &Value::String(String::new())
        );
        assert_eq!(get(&root, &["e"]), &Value::Table(BTreeMap::new()));
        let Value::Table(a) = get(&root, &["a"]) else {
            panic!()
        };
        assert_eq!(a.values().next().unwrap().line, 2);
    }

    #[test]
    fn refuses_what_it_does_not_read_with_the_line() {
        let line = |text: &str| parse(text).unwrap_err().line;
        let message = |text: &str| parse(text).unwrap_err().message;
        assert_eq!(line("a = 1\nb = 1.5\n"), 2);
        assert!(message("b = 1.5").contains("floats"));
        assert!(message("d = 1979-05-27").contains("dates"));
        assert!(message("t = {a = 1}").contains("inline tables"));
        assert!(message("[[x]]").contains("arrays of tables"));
        assert!(message("s = \"\"\"x\"\"\"").contains("multi-line"));
        assert!(message("a = 1\na = 2").contains("defined twice"));
        assert!(message("[x]\n[x]").contains("defined twice"));
        assert!(message("a = 1\n[a]").contains("already an integer"));
        assert!(message("a = b").contains("needs quotes"));
        assert!(message("a = 1 2").contains("unexpected '2'"));
        assert!(message("a = 012").contains("whole decimal"));
        assert!(message("a = \"\\x\"").contains("escape"));
        assert_eq!(line("a = [1,\n2\n"), 3);
        assert_eq!(line("x = 1\ny\n"), 2);
    }
}
