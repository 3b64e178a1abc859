//! Reading a Prometheus text exposition, as the benchmarks read the
//! operator's and the API server's `/metrics`.

/// Every sample: metric name, its labels (what the braces hold, maybe
/// empty) and value. Comments and lines without a number are skipped.
pub fn samples(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.trim().parse::<f64>().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            Some((name, labels, value))
        })
}

/// The value of label `name` among a sample's labels.
pub fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        pair.strip_prefix(name)?
            .strip_prefix("=\"")?
            .strip_suffix('"')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_labels_are_read_exactly() {
        let text = "# HELP x\nup 1\nreq_total{resource=\"pods\",subresource=\"status\"} 3\nbroken{a=\"b\"} x\n";
        let got: Vec<_> = samples(text).collect();
        assert_eq!(
            got,
            vec![
                ("up", "", 1.0),
                ("req_total", "resource=\"pods\",subresource=\"status\"", 3.0)
            ]
        );
        // `subresource` is not `resource`.
        assert_eq!(label(got[1].1, "resource"), Some("pods"));
        assert_eq!(label(got[1].1, "subresource"), Some("status"));
        assert_eq!(label(got[1].1, "verb"), None);
    }
}
