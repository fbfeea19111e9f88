//! How a limiter is judged: from the times of what it admitted and refused, on Redis's clock.
//!
//! A limit of N per window promises that *no* window of that length holds more than N admitted
//! requests, not only the windows that start on the second. So the first figure is the worst
//! window: slide a window of the limit's length over the admitted times and take the most it ever
//! holds. The second compares each decision with the one a perfect sliding-window limiter would
//! have made on the same requests at the same times: requests it would have admitted that this
//! limiter refused (too strict), and the reverse (too lenient).

/// The most times in any window of `window_us` (a window is `(t - window, t]`); `times` sorted.
pub fn worst_window(times: &[u64], window_us: u64) -> usize {
    let mut start = 0;
    let mut worst = 0;
    for (end, &t) in times.iter().enumerate() {
        while times[start] + window_us <= t {
            start += 1;
        }
        worst = worst.max(end + 1 - start);
    }
    worst
}

/// How a limiter's decisions differ from a perfect sliding window's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Disagreement {
    /// Requests the perfect limiter would have admitted that this one refused.
    pub refused_wrongly: u64,
    /// Requests this one admitted that the perfect limiter would have refused.
    pub admitted_wrongly: u64,
}

impl std::ops::AddAssign for Disagreement {
    fn add_assign(&mut self, other: Disagreement) {
        self.refused_wrongly += other.refused_wrongly;
        self.admitted_wrongly += other.admitted_wrongly;
    }
}

/// Replays one client's `attempts` (its requests' times and whether they were admitted, in time
/// order) through a perfect sliding window of `limit` per `window_us` and counts the decisions
/// that differ. The perfect limiter keeps its own history, so one early difference can cause
/// others; the counts say how far apart the two were, not who caused what.
pub fn against_exact(attempts: &[(u64, bool)], limit: usize, window_us: u64) -> Disagreement {
    let mut admitted: std::collections::VecDeque<u64> = Default::default();
    let mut differ = Disagreement::default();
    for &(t, was_admitted) in attempts {
        while admitted
            .front()
            .is_some_and(|&first| first + window_us <= t)
        {
            admitted.pop_front();
        }
        let exact = admitted.len() < limit;
        if exact {
            admitted.push_back(t);
        }
        match (exact, was_admitted) {
            (true, false) => differ.refused_wrongly += 1,
            (false, true) => differ.admitted_wrongly += 1,
            _ => {}
        }
    }
    differ
}

/// The number of `times` in the window that ends at each of `ends`: the curve the demo's chart
/// draws against the limit.
pub fn trailing_counts(
    times: &[u64],
    window_us: u64,
    ends: impl Iterator<Item = u64>,
) -> Vec<(u64, usize)> {
    ends.map(|end| {
        let inside = times
            .iter()
            .filter(|&&t| t <= end && t + window_us > end)
            .count();
        (end, inside)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_window_finds_a_burst_across_a_boundary() {
        // Five just before 1 s and five just after: a fixed window sees two windows of five, a
        // sliding window of 1 s sees ten.
        let times = [
            990_000, 991_000, 992_000, 993_000, 994_000, 1_001_000, 1_002_000, 1_003_000,
            1_004_000, 1_005_000,
        ];
        assert_eq!(worst_window(&times, 1_000_000), 10);
        assert_eq!(worst_window(&times, 5_000), 5);
        assert_eq!(worst_window(&[], 1_000), 0);
    }

    #[test]
    fn a_perfect_window_agrees_with_itself_and_counts_the_differences() {
        // Limit 2 per 10: at 0, 1 allowed, 2 refused, 10 allowed (0 has left), 11 allowed.
        let exact = [(0, true), (1, true), (2, false), (10, true), (11, true)];
        assert_eq!(against_exact(&exact, 2, 10), Disagreement::default());
        let lenient = [(0, true), (1, true), (2, true)];
        assert_eq!(against_exact(&lenient, 2, 10).admitted_wrongly, 1);
        let strict = [(0, true), (1, false)];
        assert_eq!(against_exact(&strict, 2, 10).refused_wrongly, 1);
    }
}
