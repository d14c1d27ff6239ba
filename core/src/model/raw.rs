//! Canonical JSON straight from the bytes ARM answered, without building a
//! value tree: one pass that strips the server's fields, sorts keys, writes
//! the canonical form (docs/FORMAT.md) and, on the way, finds the references
//! and masked SecureStrings the restorability report needs.
//!
//! It produces exactly what `canonicalize_owned` + `write_canonical` produce
//! from the parsed tree (tests check this byte for byte on generated factories
//! and the corpus). Whatever it does not handle on its own, it hands to that
//! tree path for the whole resource: escapes other than the canonical ones in
//! keys, duplicate keys, numbers that are not plain integers in range, invalid
//! JSON (so errors read as serde_json's), nesting deeper than serde_json allows.
//! The fast path exists because value trees cost more than zstd, AES-GCM and
//! SHA-256 together (docs/PERFORMANCE.md).

use std::borrow::Cow;

use serde_json::Value;

use super::canonical::{ENVELOPE, canonicalize_owned, write_canonical};
use super::kind::ResourceKind;
use super::references::{Reference, references};
use super::restorability::{MASK, masked_pointers};

/// What one pass over an ARM answer learned besides the canonical bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The answer's top-level `name`.
    pub name: Option<String>,
    /// `properties.runtimeState` (triggers), `properties.state` (IRs).
    pub runtime_state: Option<String>,
    /// Every reference in the canonical definition, in document order.
    pub references: Vec<Reference>,
    /// JSON Pointers of masked inline SecureString values, in document order.
    pub masked: Vec<String>,
}

/// Appends the canonical definition of the ARM answer `raw` (of `kind`) to
/// `out` and returns what the pass found. On a JSON error nothing is appended.
pub fn canonicalize_raw(
    kind: ResourceKind,
    raw: &[u8],
    out: &mut Vec<u8>,
) -> Result<Scan, serde_json::Error> {
    if let Some(scan) = canonicalize_fast(kind, raw, out) {
        return Ok(scan);
    }
    Ok(canonicalize_tree(kind, serde_json::from_slice(raw)?, out))
}

/// Where an answer says its runtime state: a trigger's `runtimeState`, a
/// Managed IR's `state` (both the service's, never part of the definition).
pub fn state_pointer(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::IntegrationRuntime => "/properties/state",
        _ => "/properties/runtimeState",
    }
}

/// The tree path: what `canonicalize_raw` does for answers the fast path
/// declines, slower, and the reference its output is tested against.
pub fn canonicalize_tree(kind: ResourceKind, answer: Value, out: &mut Vec<u8>) -> Scan {
    let name = answer
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let runtime_state = answer
        .pointer(state_pointer(kind))
        .and_then(Value::as_str)
        .map(str::to_string);
    let definition = canonicalize_owned(kind, answer);
    write_canonical(&definition, out);
    Scan {
        name,
        runtime_state,
        references: references(&definition),
        masked: masked_pointers(&definition),
    }
}

/// The fast path alone: None (and nothing appended) when it declines.
#[doc(hidden)]
pub fn canonicalize_fast(kind: ResourceKind, raw: &[u8], out: &mut Vec<u8>) -> Option<Scan> {
    thread_local! {
        /// Work buffers, kept between resources (a backup canonicalizes
        /// thousands on the same thread).
        static BUFFERS: std::cell::RefCell<(Vec<Entry>, Vec<u8>, Vec<Seg>)> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
    }
    if u32::try_from(raw.len()).is_err() {
        return None;
    }
    let start = out.len();
    BUFFERS.with_borrow_mut(|(entries, scratch, path)| {
        entries.clear();
        path.clear();
        let mut p = Parser {
            input: raw,
            pos: 0,
            kind,
            entries: std::mem::take(entries),
            scratch: std::mem::take(scratch),
            path: std::mem::take(path),
            scan: Scan::default(),
        };
        let done = p.document(out);
        (*entries, *scratch, *path) = (p.entries, p.scratch, p.path);
        match done {
            Ok(()) => Some(p.scan),
            Err(Decline) => {
                out.truncate(start);
                None
            }
        }
    })
}

/// The index of the first byte at or after `i` that ends a run of plain
/// ASCII string bytes: a quote, a backslash, a control character or a
/// non-ASCII byte (or the end). Eight bytes at a time: strings are most of a
/// definition's bytes.
#[inline]
fn skip_plain(input: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = input.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set when it is zero (quote/backslash match),
        // below 0x20 or non-ASCII; only the lowest flagged byte is exact, and
        // it is the one wanted.
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | x.wrapping_sub(ONES * 0x20)
            | x)
            & HIGH;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = input.get(i) {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            break;
        }
        i += 1;
    }
    i
}

/// The fast path declines: the tree path takes the resource.
struct Decline;

type R<T> = Result<T, Decline>;

/// serde_json's recursion limit: deeper documents are its error to report.
const MAX_DEPTH: usize = 127;

/// Where an object sits, for stripping and capturing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    Properties,
    FactoryIdentity,
    /// `identity.userAssignedIdentities` of a factory.
    UserAssigned,
    /// One user-assigned identity in it.
    UserAssignedOne,
    Other,
}

#[derive(Clone, Copy)]
enum Seg {
    Key(u32, u32),
    Index(u32),
}

/// One kept member of the object being parsed: key and output ranges.
#[derive(Clone, Copy)]
struct Entry {
    /// The key's first eight bytes, big-endian, zero-padded: most key
    /// comparisons end here (keys hold no NUL, so padding sorts first).
    prefix: u64,
    key: (u32, u32),
    /// The member as written (`"key":value`), without its comma.
    out: (u32, u32),
}

impl Entry {
    fn cmp(&self, other: &Entry, input: &[u8]) -> std::cmp::Ordering {
        self.prefix.cmp(&other.prefix).then_with(|| {
            input[self.key.0 as usize..self.key.1 as usize]
                .cmp(&input[other.key.0 as usize..other.key.1 as usize])
        })
    }
}

fn prefix(key: &[u8]) -> u64 {
    if let Some(first) = key.first_chunk::<8>() {
        return u64::from_be_bytes(*first);
    }
    // Shorter keys: byte by byte (a variable-length copy would be a memcpy call).
    let mut p = 0u64;
    for (i, &b) in key.iter().enumerate() {
        p |= u64::from(b) << (56 - 8 * i);
    }
    p
}

/// A member value the reference and SecureString checks look at: its input
/// range, and whether it is a string without escapes (contents at
/// `start + 1..end - 1`). Plain u32s, no Option: the checks' bookkeeping
/// sits on the hot path and mixed-width fields stalled store forwarding.
#[derive(Clone, Copy)]
struct Val {
    start: u32,
    end: u32,
    plain_string: u32,
}

impl Val {
    const ABSENT: Val = Val {
        start: u32::MAX,
        end: 0,
        plain_string: 0,
    };

    fn get(self) -> Option<Val> {
        (self.start != u32::MAX).then_some(self)
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    kind: ResourceKind,
    /// Kept members of every open object, innermost last.
    entries: Vec<Entry>,
    scratch: Vec<u8>,
    path: Vec<Seg>,
    scan: Scan,
}

impl<'a> Parser<'a> {
    fn document(&mut self, out: &mut Vec<u8>) -> R<()> {
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(Decline);
        }
        self.object(Ctx::Top, 0, out)?;
        self.ws();
        if self.pos != self.input.len() {
            return Err(Decline);
        }
        Ok(())
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> R<()> {
        self.ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Decline)
        }
    }

    /// Writes the value at `pos` (whitespace skipped); returns whether it is
    /// a string without escapes.
    #[inline]
    fn value(&mut self, ctx: Ctx, depth: usize, out: &mut Vec<u8>) -> R<bool> {
        match self.peek().ok_or(Decline)? {
            b'{' => self.object(ctx, depth + 1, out).map(|()| false),
            b'[' => self.array(depth + 1, out).map(|()| false),
            b'"' => self.string(out),
            b't' => self.literal(b"true", out).map(|()| false),
            b'f' => self.literal(b"false", out).map(|()| false),
            b'n' => self.literal(b"null", out).map(|()| false),
            _ => self.number(out).map(|()| false),
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> R<()> {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            out.extend_from_slice(word);
            Ok(())
        } else {
            Err(Decline)
        }
    }

    /// Plain integers that fit serde_json's u64/i64 are written as they came;
    /// anything else goes through serde_json's Number so it prints the same.
    fn number(&mut self, out: &mut Vec<u8>) -> R<()> {
        let start = self.pos;
        let mut integer = true;
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' | b'-' => {}
                b'.' | b'e' | b'E' | b'+' => integer = false,
                _ => break,
            }
            self.pos += 1;
        }
        let text = &self.input[start..self.pos];
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        let plain = integer
            && !digits.is_empty()
            && digits.len() <= 18
            && digits.iter().all(u8::is_ascii_digit)
            && (digits[0] != b'0' || (digits.len() == 1 && text.len() == 1));
        if plain {
            out.extend_from_slice(text);
            return Ok(());
        }
        let number: serde_json::Number = serde_json::from_slice(text).map_err(|_| Decline)?;
        serde_json::to_writer(&mut *out, &number).map_err(|_| Decline)
    }

    /// Scans a string at `pos`. Returns true when it has no escapes (written
    /// as it came). Strings with escapes are decoded and re-escaped the way
    /// serde_json writes them.
    fn string(&mut self, out: &mut Vec<u8>) -> R<bool> {
        let start = self.pos;
        let (end, escaped) = self.string_end()?;
        if !escaped {
            out.extend_from_slice(&self.input[start..end]);
            return Ok(true);
        }
        let text: String = serde_json::from_slice(&self.input[start..end]).map_err(|_| Decline)?;
        serde_json::to_writer(&mut *out, &text).map_err(|_| Decline)?;
        Ok(false)
    }

    /// Moves past a string starting at `pos`; returns the index after its
    /// closing quote and whether it holds escapes. A raw control character
    /// is invalid JSON: decline.
    #[inline]
    fn string_end(&mut self) -> R<(usize, bool)> {
        let input = self.input;
        let start = self.pos + 1;
        let mut i = start;
        let (mut escaped, mut ascii) = (false, true);
        loop {
            i = skip_plain(input, i);
            match *input.get(i).ok_or(Decline)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                0x80.. => {
                    ascii = false;
                    i += 1;
                }
                _ => return Err(Decline),
            }
        }
        // Outside strings only ASCII is accepted, so this is the only place
        // UTF-8 needs checking.
        if !ascii {
            std::str::from_utf8(&input[start..i]).map_err(|_| Decline)?;
        }
        self.pos = i + 1;
        Ok((self.pos, escaped))
    }

    fn array(&mut self, depth: usize, out: &mut Vec<u8>) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(Decline);
        }
        self.pos += 1;
        out.push(b'[');
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            out.push(b']');
            return Ok(());
        }
        let mut index = 0u32;
        loop {
            if index > 0 {
                out.push(b',');
            }
            self.path.push(Seg::Index(index));
            self.ws();
            self.value(Ctx::Other, depth, out)?;
            self.path.pop();
            index += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    out.push(b']');
                    return Ok(());
                }
                _ => return Err(Decline),
            }
        }
    }

    fn object(&mut self, ctx: Ctx, depth: usize, out: &mut Vec<u8>) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(Decline);
        }
        self.pos += 1;
        out.push(b'{');
        let body = out.len();
        let first = self.entries.len();
        // Findings of this object come before those of its members.
        let refs_at = self.scan.references.len();
        let masked_at = self.scan.masked.len();
        let (mut ty, mut reference_name, mut value) = (Val::ABSENT, Val::ABSENT, Val::ABSENT);
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            out.push(b'}');
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Decline);
            }
            let key_start = self.pos + 1;
            let (after, escaped) = self.string_end()?;
            if escaped {
                return Err(Decline);
            }
            let key_end = after - 1;
            let key = &self.input[key_start..key_end];
            self.expect(b':')?;
            let strip = self.strips(ctx, key);
            let member = out.len();
            if self.entries.len() > first {
                out.push(b',');
            }
            let written = out.len();
            let (refs_before, masked_before) = (self.scan.references.len(), self.scan.masked.len());
            let (start, plain_string) =
                self.member_value(ctx, key, key_start, after, depth, out)?;
            let v = Val {
                start: start as u32,
                end: self.pos as u32,
                plain_string: u32::from(plain_string),
            };
            self.note(ctx, key, v)?;
            if strip {
                // Gone from the definition, with whatever was found inside.
                out.truncate(member);
                self.scan.references.truncate(refs_before);
                self.scan.masked.truncate(masked_before);
            } else {
                match key {
                    b"type" => ty = v,
                    b"referenceName" => reference_name = v,
                    b"value" => value = v,
                    _ => {}
                }
                self.entries.push(Entry {
                    prefix: prefix(key),
                    key: (key_start as u32, key_end as u32),
                    out: (written as u32, out.len() as u32),
                });
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Decline),
            }
        }
        self.close(first, body, out)?;
        self.findings(ty, reference_name, value, refs_at, masked_at)?;
        Ok(())
    }

    /// Whether the member `key` of an object in `ctx` is the server's, not the definition's.
    #[inline(always)]
    fn strips(&self, ctx: Ctx, key: &[u8]) -> bool {
        match ctx {
            Ctx::Top => ENVELOPE.iter().any(|e| e.as_bytes() == key),
            Ctx::Properties => self
                .kind
                .server_properties()
                .iter()
                .any(|e| e.as_bytes() == key),
            Ctx::FactoryIdentity => key == b"principalId" || key == b"tenantId",
            Ctx::UserAssignedOne => key == b"clientId" || key == b"principalId",
            Ctx::UserAssigned | Ctx::Other => false,
        }
    }

    /// The context of the value of member `key` of an object in `ctx`.
    #[inline(always)]
    fn child(&self, ctx: Ctx, key: &[u8]) -> Ctx {
        match (ctx, key) {
            (Ctx::Top, b"properties") => Ctx::Properties,
            (Ctx::Top, b"identity") if self.kind == ResourceKind::Factory => Ctx::FactoryIdentity,
            (Ctx::FactoryIdentity, b"userAssignedIdentities") => Ctx::UserAssigned,
            (Ctx::UserAssigned, _) => Ctx::UserAssignedOne,
            _ => Ctx::Other,
        }
    }

    /// Writes `"key":value` for the member whose key (`key`, at `key_start`
    /// in the input) ends its string at `after`; answers where the value starts and
    /// whether it was a string without escapes.
    #[inline(always)]
    fn member_value(
        &mut self,
        ctx: Ctx,
        key: &'a [u8],
        key_start: usize,
        after: usize,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> R<(usize, bool)> {
        // `"key":` as it came when the colon follows the key directly
        // (ARM's compact answers): one copy instead of three.
        let compact = self.pos == after + 1;
        self.ws();
        let start = self.pos;
        let plain_string = if compact && start == after + 1 && self.peek() == Some(b'"') {
            // A string right after the colon: `"key":"value"` is copied
            // in one piece when it holds no escapes. Strings hold no
            // findings, so the path is not needed.
            let (end, escaped) = self.string_end()?;
            if escaped {
                out.extend_from_slice(&self.input[key_start - 1..start]);
                let text: String =
                    serde_json::from_slice(&self.input[start..end]).map_err(|_| Decline)?;
                serde_json::to_writer(&mut *out, &text).map_err(|_| Decline)?;
                false
            } else {
                out.extend_from_slice(&self.input[key_start - 1..end]);
                true
            }
        } else {
            if compact {
                out.extend_from_slice(&self.input[key_start - 1..after + 1]);
            } else {
                out.push(b'"');
                out.extend_from_slice(key);
                out.extend_from_slice(b"\":");
            }
            let key_end = key_start + key.len();
            self.path.push(Seg::Key(key_start as u32, key_end as u32));
            let plain = self.value(self.child(ctx, key), depth, out)?;
            self.path.pop();
            plain
        };
        Ok((start, plain_string))
    }

    /// Remembers the resource's name and an integration runtime's state as they pass.
    #[inline(always)]
    fn note(&mut self, ctx: Ctx, key: &[u8], v: Val) -> R<()> {
        match (ctx, key) {
            (Ctx::Top, b"name") => self.scan.name = self.text(v)?.map(Cow::into_owned),
            (Ctx::Properties, b"runtimeState") => {
                self.scan.runtime_state = self.text(v)?.map(Cow::into_owned)
            }
            (Ctx::Properties, b"state") if self.kind == ResourceKind::IntegrationRuntime => {
                self.scan.runtime_state = self.text(v)?.map(Cow::into_owned)
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the kept members of the object whose output starts at `body`
    /// in key order (they were written in the order they came).
    fn close(&mut self, first: usize, body: usize, out: &mut Vec<u8>) -> R<()> {
        use std::cmp::Ordering::Less;
        let input = self.input;
        let members = &mut self.entries[first..];
        let sorted = members.is_sorted_by(|a, b| a.cmp(b, input) == Less);
        if !sorted {
            members.sort_unstable_by(|a, b| a.cmp(b, input));
            if members.windows(2).any(|w| w[0].cmp(&w[1], input).is_eq()) {
                // Duplicate keys: serde_json keeps the last; let it.
                return Err(Decline);
            }
            self.scratch.clear();
            self.scratch.extend_from_slice(&out[body..]);
            out.truncate(body);
            for (i, e) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(
                    &self.scratch[e.out.0 as usize - body..e.out.1 as usize - body],
                );
            }
        }
        self.entries.truncate(first);
        out.push(b'}');
        Ok(())
    }

    /// The contents of a string member without escapes.
    fn plain(&self, v: Val) -> Option<&'a str> {
        let input = self.input;
        (v.plain_string != 0)
            .then(|| std::str::from_utf8(&input[v.start as usize + 1..v.end as usize - 1]).ok())
            .flatten()
    }

    /// The decoded string value of a member, if it is a string (borrowed
    /// from the input unless it has escapes).
    fn text(&self, v: Val) -> R<Option<Cow<'a, str>>> {
        if let Some(s) = self.plain(v) {
            return Ok(Some(Cow::Borrowed(s)));
        }
        if self.input[v.start as usize] != b'"' {
            return Ok(None);
        }
        serde_json::from_slice::<String>(&self.input[v.range()])
            .map(|s| Some(Cow::Owned(s)))
            .map_err(|_| Decline)
    }

    /// The JSON Pointer of the member being closed. Built as bytes (keys
    /// were checked as UTF-8 when scanned), escaped per RFC 6901.
    fn pointer(&self) -> String {
        let mut p = Vec::with_capacity(64);
        for seg in &self.path {
            p.push(b'/');
            match *seg {
                Seg::Key(s, e) => {
                    for &b in &self.input[s as usize..e as usize] {
                        match b {
                            b'~' => p.extend_from_slice(b"~0"),
                            b'/' => p.extend_from_slice(b"~1"),
                            _ => p.push(b),
                        }
                    }
                }
                Seg::Index(i) => {
                    let mut digits = [0u8; 10];
                    let (mut n, mut at) = (i, digits.len());
                    loop {
                        at -= 1;
                        digits[at] = b'0' + (n % 10) as u8;
                        n /= 10;
                        if n == 0 {
                            break;
                        }
                    }
                    p.extend_from_slice(&digits[at..]);
                }
            }
        }
        String::from_utf8(p).expect("keys are checked as UTF-8")
    }

    /// The bytes of a string member without escapes (no UTF-8 check: for
    /// comparing with ASCII words).
    fn plain_bytes(&self, v: Val) -> Option<&'a [u8]> {
        let input = self.input;
        (v.plain_string != 0).then(|| &input[v.start as usize + 1..v.end as usize - 1])
    }

    /// Whether a member is the string `word` (ASCII, no escapes needed).
    fn is(&self, v: Val, word: &[u8]) -> R<bool> {
        if let Some(b) = self.plain_bytes(v) {
            return Ok(b == word);
        }
        Ok(self.text(v)?.is_some_and(|t| t.as_bytes() == word))
    }

    /// The reference and masked-SecureString checks of `references` and
    /// `masked_pointers`, on this object's kept members.
    fn findings(
        &mut self,
        ty: Val,
        reference_name: Val,
        value: Val,
        refs_at: usize,
        masked_at: usize,
    ) -> R<()> {
        let Some(ty_val) = ty.get() else {
            return Ok(());
        };
        // Most objects have a `type`; few are SecureStrings or references:
        // compare bytes first, decode only what is kept.
        let interesting = match self.plain_bytes(ty_val) {
            Some(b) => {
                (b == b"SecureString" && value.get().is_some())
                    || (b.ends_with(b"Reference") && reference_name.get().is_some())
            }
            None => true,
        };
        if !interesting {
            return Ok(());
        }
        let Some(ty) = self.text(ty_val)? else {
            return Ok(());
        };
        if ty == "SecureString"
            && let Some(v) = value.get()
            && self.is(v, MASK.as_bytes())?
        {
            let pointer = format!("{}/value", self.pointer());
            self.scan.masked.insert(masked_at, pointer);
        }
        if let Some(rn) = reference_name.get()
            && ty.ends_with("Reference")
        {
            let (name, dynamic) = match self.text(rn)? {
                Some(s) => {
                    let dynamic = s.starts_with('@');
                    (s.into_owned(), dynamic)
                }
                None => {
                    // {"value": "@...", "type": "Expression"}, or something odd:
                    // read as the tree path reads it.
                    let other: Value =
                        serde_json::from_slice(&self.input[rn.range()]).map_err(|_| Decline)?;
                    if !other.is_object() {
                        return Err(Decline);
                    }
                    let name = match other.get("value").and_then(Value::as_str) {
                        Some(s) => s.to_string(),
                        // The tree path prints the object in the service's key order.
                        None => return Err(Decline),
                    };
                    (name, true)
                }
            };
            let reference = Reference {
                kind: ResourceKind::from_reference_type(&ty),
                reference_type: ty.into_owned(),
                name,
                dynamic,
                pointer: self.pointer(),
            };
            self.scan.references.insert(refs_at, reference);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The tree path's answer for the same input.
    fn reference(kind: ResourceKind, raw: &str) -> (Vec<u8>, Scan) {
        let mut out = Vec::new();
        let scan = canonicalize_tree(kind, serde_json::from_str(raw).expect("json"), &mut out);
        (out, scan)
    }

    fn fast(kind: ResourceKind, raw: &str) -> Option<(Vec<u8>, Scan)> {
        let mut out = Vec::new();
        canonicalize_fast(kind, raw.as_bytes(), &mut out).map(|scan| (out, scan))
    }

    fn same(kind: ResourceKind, raw: &str) {
        let expected = reference(kind, raw);
        let mut out = b"prefix".to_vec();
        let scan = canonicalize_raw(kind, raw.as_bytes(), &mut out).expect("valid JSON");
        assert_eq!(
            String::from_utf8_lossy(&out[6..]),
            String::from_utf8_lossy(&expected.0),
            "{raw}"
        );
        assert_eq!(scan, expected.1, "{raw}");
    }

    #[test]
    fn ordinary_answers_take_the_fast_path_and_match_the_tree() {
        let cases = [
            (
                ResourceKind::Pipeline,
                r#"{"id": "/x/PL", "name": "PL", "type": "Microsoft.DataFactory/factories/pipelines", "etag": "e",
                   "properties": {"activities": [
                     {"name": "run", "type": "ExecutePipeline", "dependsOn": [], "typeProperties": {"pipeline": {"type": "PipelineReference", "referenceName": "Child"}, "waitOnCompletion": true}},
                     {"name": "copy", "type": "Copy", "inputs": [{"referenceName": {"value": "@pipeline().parameters.ds", "type": "Expression"}, "type": "DatasetReference"}],
                      "policy": {"timeout": "7.00:00:00", "retry": 0, "retryIntervalInSeconds": 30, "n": -12, "big": 123456789012345678}}],
                   "parameters": {"ds": {"type": "string"}}, "annotations": [], "folder": {"name": "a/b~c"}}}"#,
            ),
            (
                ResourceKind::Trigger,
                r#"{"name":"TR","properties":{"runtimeState":"Started","type":"ScheduleTrigger","pipelines":[{"pipelineReference":{"referenceName":"PL","type":"PipelineReference"}}]}}"#,
            ),
            (
                ResourceKind::Factory,
                r#"{"name":"f","location":"westeurope","identity":{"type":"SystemAssigned","principalId":"p","tenantId":"t"},"properties":{"createTime":"x","version":"2018-06-01","provisioningState":"Succeeded","globalParameters":{}}}"#,
            ),
            (
                ResourceKind::Factory,
                r#"{"name":"f","location":"westeurope","identity":{"type":"SystemAssigned,UserAssigned","principalId":"p","tenantId":"t","userAssignedIdentities":{"/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u":{"clientId":"c","principalId":"p2"}}},"properties":{}}"#,
            ),
            (
                ResourceKind::LinkedService,
                r#"{"name":"LS","properties":{"type":"AzureSqlDatabase","typeProperties":{"password":{"value":"**********","type":"SecureString"},"a/b":{"c~d":{"type":"SecureString","value":"**********"}}}}}"#,
            ),
            (ResourceKind::Dataset, r#"  {  }  "#),
            (
                ResourceKind::Dataset,
                r#"{"name":"é ü 😀","properties":{"x":"日本"}}"#,
            ),
            (
                ResourceKind::Dataset,
                r#"{"b":{},"a":[],"c":[[]],"d":null,"e":false}"#,
            ),
        ];
        for (kind, raw) in cases {
            assert!(fast(kind, raw).is_some(), "fast path declined {raw}");
            same(kind, raw);
        }
        // A user-assigned identity's ids are the service's, not the definition's.
        let (bytes, _) = fast(ResourceKind::Factory, cases[3].1).expect("fast");
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(
            text.contains(r#""userAssignedIdentities":{"/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u":{}}"#)
                && !text.contains("clientId"),
            "{text}"
        );
    }

    #[test]
    fn escapes_and_odd_numbers_match_the_tree() {
        let cases = [
            r#"{"name":"a\"b","properties":{"s":"line\nbreak \"q\" \\ \/ \u00e9 \u0001 \u001f \ud83d\ude00 \b\f\r\t"}}"#,
            r#"{"properties":{"f":1.0,"e":1e3,"neg0":-0,"negf":-0.5,"big":18446744073709551615,"huge":18446744073709551616,"min":-9223372036854775808,"small":1.5e-7}}"#,
            r#"{"properties":{"x":{"type":"\u0053ecureString","value":"*\u002a********"}}}"#,
            r#"{"properties":{"r":{"referenceName":"\u0041","type":"Linked\u0053erviceReference"}}}"#,
        ];
        for raw in cases {
            same(ResourceKind::Pipeline, raw);
        }
    }

    #[test]
    fn what_the_fast_path_declines_still_comes_out_right() {
        let cases = [
            // Duplicate keys: the last one wins, at the first one's place.
            r#"{"properties":{"b":1,"a":2,"b":3}}"#,
            // An escaped key.
            r#"{"properties":{"k\u0065y":1,"a":2}}"#,
            // A reference name that is an object without a value.
            r#"{"properties":{"r":{"referenceName":{"z":1,"a":2},"type":"DatasetReference"}}}"#,
            // Not an object at the top.
            r#"[1,2]"#,
        ];
        for raw in cases {
            same(ResourceKind::Pipeline, raw);
        }
        assert!(fast(ResourceKind::Pipeline, cases[0]).is_none());
        assert!(fast(ResourceKind::Pipeline, cases[1]).is_none());
    }

    #[test]
    fn skipping_eight_bytes_at_a_time_stops_where_a_byte_at_a_time_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xff, 0x01, b'Z',
        ];
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.random_bool(0.85) {
                        b'x'
                    } else {
                        alphabet[rng.random_range(0..alphabet.len())]
                    }
                })
                .collect();
            let start = rng.random_range(0..=len);
            let slow = (start..len)
                .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..0x20 | 0x80..))
                .unwrap_or(len);
            assert_eq!(skip_plain(&bytes, start), slow, "{bytes:?} from {start}");
        }
    }

    #[test]
    fn invalid_json_is_serde_json_s_error_and_writes_nothing() {
        for raw in [
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            "{\"a\":\"raw\ncontrol\"}",
            r#"{"a":tru}"#,
            r#"{"a":1} x"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":1"#,
            "",
        ] {
            let mut out = b"keep".to_vec();
            assert!(
                canonicalize_raw(ResourceKind::Pipeline, raw.as_bytes(), &mut out).is_err(),
                "{raw:?} accepted"
            );
            assert_eq!(out, b"keep");
        }
        for raw in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\xc3\":1}",
            b"{\"a\":1\xc3\xa9}",
        ] {
            let mut out = Vec::new();
            assert!(
                canonicalize_raw(ResourceKind::Pipeline, raw, &mut out).is_err(),
                "{raw:?} accepted"
            );
            assert!(out.is_empty());
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let mut out = Vec::new();
        assert!(canonicalize_raw(ResourceKind::Pipeline, deep.as_bytes(), &mut out).is_err());
    }
}
