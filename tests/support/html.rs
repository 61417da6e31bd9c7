//! Reading form fields out of the service's HTML pages, the way a browser submits them.
//! Standard library only: the api, observability and scale test targets and the benchmark
//! load generator (`bench/loadgen`) include this one file with `#[path]`.

/// The value the form control named `name` submits: the `value` attribute of the first tag
/// carrying `name="…"`, in whichever order the attributes come, with character references
/// decoded (askama escapes `" & ' < >` as `&#34; &#38; &#39; &#60; &#62;`). A control
/// without a `value` attribute submits `""`; `None` when the page has no such control.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    tags(html)
        .map(attributes)
        .find(|attrs| attrs.iter().any(|(n, v)| n == "name" && v == name))
        .map(|attrs| {
            attrs
                .into_iter()
                .find(|(n, _)| n == "value")
                .map(|(_, v)| v)
                .unwrap_or_default()
        })
}

/// The inside of every start tag (`<input …>` → `input …`); quoted `>` do not end a tag.
fn tags(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find('<')? + 1;
            rest = &rest[start..];
            let mut quote = None;
            let end = rest.char_indices().find_map(|(i, c)| {
                match (quote, c) {
                    (None, '"' | '\'') => quote = Some(c),
                    (Some(q), c) if c == q => quote = None,
                    (None, '>') => return Some(i),
                    _ => {}
                }
                None
            })?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return Some(tag);
            }
        }
    })
}

/// `(name, decoded value)` of each attribute of a tag's inside (`input type="hidden" …`);
/// names lower-cased, a bare attribute has the value `""`.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Skip the element name.
    let mut rest = tag.trim_start_matches(|c: char| !c.is_whitespace() && c != '/');
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return out;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (raw, next) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    let close = body.find(q).unwrap_or(body.len());
                    (&body[..close], body.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = decode(raw);
            rest = next;
        }
        out.push((name, value));
    }
}

/// Decodes numeric character references (`&#38;`, `&#x26;`) and the named ones a template
/// engine writes (`&amp; &lt; &gt; &quot; &apos;`); anything else is kept as written.
fn decode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let n = entity.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::form_value;

    #[test]
    fn reads_a_value_in_any_attribute_order_and_decodes_it() {
        let page = r#"<form method="post" action="/login">
            <input value="a&#38;b&#61;&#x3C;" type="hidden" name="csrf_token">
            <input id="username" name='username' type=text value='O&#39;Brien &#34;&amp;&#34;'>
            <input id="password" name="password" type="password" required>
            <button name="decision" value="deny">Deny</button><button name="decision" value="allow">"#;
        assert_eq!(form_value(page, "csrf_token").as_deref(), Some("a&b=<"));
        assert_eq!(form_value(page, "username").as_deref(), Some("O'Brien \"&\""));
        assert_eq!(form_value(page, "password").as_deref(), Some(""));
        assert_eq!(form_value(page, "decision").as_deref(), Some("deny"));
        assert_eq!(form_value(page, "client_id"), None);
        // A name that only appears in text or in another attribute's value is no control.
        assert_eq!(
            form_value(r#"<p title='name="x"'>name="x" value="y"</p>"#, "x"),
            None
        );
    }
}
