//! Answer templates: `{{name}}` is replaced by a variable from the shop profile or the
//! customer record. Nothing else is special, so answers can contain any other text.

/// The variable names a template uses, with their byte offsets.
pub fn variables(template: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut base = 0;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                out.push((base + open, after[..close].trim()));
                let consumed = open + 2 + close + 2;
                base += consumed;
                rest = &rest[consumed..];
            }
            None => break,
        }
    }
    out
}

/// Render `template`, asking `lookup` for each variable. An unknown variable is left as
/// written (the library check refuses such templates, so this only happens with
/// agent-written text).
pub fn render(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_renders_variables() {
        let t = "{{nickname}}您好，{{ shop_name }}满{{free_shipping_threshold}}元包邮{{";
        let names: Vec<_> = variables(t).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["nickname", "shop_name", "free_shipping_threshold"]);
        let r = render(t, |n| match n {
            "nickname" => Some("小林".into()),
            "shop_name" => Some("好物小铺".into()),
            _ => None,
        });
        assert_eq!(r, "小林您好，好物小铺满{{free_shipping_threshold}}元包邮{{");
    }
}
