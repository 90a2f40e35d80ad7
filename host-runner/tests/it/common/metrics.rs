//! One scrape of host-runner's `/metrics` (Prometheus text format), read
//! series by series; scraping is `server`'s.

/// One scrape of `/metrics` in Prometheus text format.
#[derive(Clone, Debug)]
pub(crate) struct Metrics(pub String);

impl Metrics {
    /// The value of one series, named exactly as exposed, labels included
    /// (`reprise_requests_total{outcome="ok"}`); panics if it is missing.
    pub(crate) fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.0))
    }

    /// [`Metrics::value`] of a counter or gauge, as a whole number.
    pub(crate) fn count(&self, series: &str) -> u64 {
        self.value(series) as u64
    }
}
