//! Communication graphs for decentralized training and their Metropolis–Hastings mixing weights.
//!
//! Nodes are numbered from 1 in everything a user reads or writes (edge lists, messages) and from 0 inside
//! (ranks). A [`Topology`] is always connected, undirected and without self-loops: [`Topology::new`] refuses
//! anything else, so averaging over it converges.

use crate::error::{Error, Result};

/// An undirected, connected communication graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// How the graph was given (`two-star`, `ring`, an edge list).
    pub name: String,
    /// `neighbors[i]`: the nodes linked to node `i` (0-based), ascending.
    neighbors: Vec<Vec<usize>>,
}

impl Topology {
    /// The names accepted by [`Topology::parse`].
    pub const NAMES: &'static [&'static str] = &["two-star", "ring", "complete"];

    /// A graph on `nodes` nodes from 0-based edges. Refuses self-loops, nodes out of range and graphs that are
    /// not connected (averaging could never reach the nodes cut off).
    pub fn new(
        name: impl Into<String>,
        nodes: usize,
        edges: &[(usize, usize)],
    ) -> Result<Topology> {
        let name: String = name.into();
        let label = name.clone();
        let bad = |reason: String| Error::config("--topology", format!("{label}: {reason}"));
        if nodes < 2 {
            return Err(bad(format!("needs at least 2 nodes, got {nodes}")));
        }
        let mut neighbors = vec![Vec::new(); nodes];
        for &(a, b) in edges {
            if a >= nodes || b >= nodes {
                return Err(bad(format!(
                    "edge {}-{} names a node beyond the {nodes} nodes",
                    a + 1,
                    b + 1
                )));
            }
            if a == b {
                return Err(bad(format!("edge {}-{} is a self-loop", a + 1, b + 1)));
            }
            for (x, y) in [(a, b), (b, a)] {
                if !neighbors[x].contains(&y) {
                    neighbors[x].push(y);
                }
            }
        }
        for n in &mut neighbors {
            n.sort_unstable();
        }
        let t = Topology { name, neighbors };
        let reached = t.reachable_from(0);
        if let Some(cut) = reached.iter().position(|&r| !r) {
            return Err(bad(format!(
                "the graph is not connected: node {} cannot be reached from node 1",
                cut + 1
            )));
        }
        Ok(t)
    }

    /// The graph (1,2)-3-4-(5,6): nodes 1 and 2 linked to 3, 3 to 4, 4 to 5 and 6.
    pub fn two_star() -> Topology {
        Topology::new("two-star", 6, &[(0, 2), (1, 2), (2, 3), (3, 4), (3, 5)])
            .expect("the two-star graph is connected")
    }

    /// The cycle 1-2-…-n-1.
    pub fn ring(nodes: usize) -> Result<Topology> {
        let edges: Vec<_> = (0..nodes).map(|i| (i, (i + 1) % nodes)).collect();
        let edges = if nodes == 2 { vec![(0, 1)] } else { edges };
        Topology::new("ring", nodes, &edges)
    }

    /// Every node linked to every other.
    pub fn complete(nodes: usize) -> Result<Topology> {
        let edges: Vec<_> = (0..nodes)
            .flat_map(|a| (a + 1..nodes).map(move |b| (a, b)))
            .collect();
        Topology::new("complete", nodes, &edges)
    }

    /// Parses a name (`two-star`, `ring`, `complete`; the last two on `nodes` nodes) or an edge list of 1-based
    /// node numbers, `1-3,2-3,3-4` (commas, spaces or new lines between edges), or `@FILE` holding such a list.
    pub fn parse(text: &str, nodes: Option<usize>) -> Result<Topology> {
        let need_nodes = |name: &str| {
            nodes.ok_or_else(|| {
                Error::config("--topology", format!("{name} needs a node count (--nodes)"))
            })
        };
        let t = match text {
            "two-star" => Topology::two_star(),
            "ring" => Topology::ring(need_nodes("ring")?)?,
            "complete" => Topology::complete(need_nodes("complete")?)?,
            _ => {
                let (name, list) = match text.strip_prefix('@') {
                    Some(path) => (
                        path.to_string(),
                        std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?,
                    ),
                    None => ("edge list".to_string(), text.to_string()),
                };
                let mut edges = Vec::new();
                for token in list
                    .split([',', '\n', ';'])
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.starts_with('#'))
                {
                    let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|&n| n >= 1);
                    let pair = token
                        .split_once('-')
                        .or_else(|| token.split_once(char::is_whitespace));
                    match pair.and_then(|(a, b)| Some((parse(a)?, parse(b)?))) {
                        Some((a, b)) => edges.push((a - 1, b - 1)),
                        None => {
                            return Err(Error::config(
                                "--topology",
                                format!(
                                    "{name}: `{token}` is not an edge `A-B` of node numbers from 1 \
                                     (or a name: {})",
                                    Self::NAMES.join(", ")
                                ),
                            ))
                        }
                    }
                }
                let count = edges.iter().map(|&(a, b)| a.max(b) + 1).max().unwrap_or(0);
                Topology::new(name, nodes.unwrap_or(count), &edges)?
            }
        };
        match nodes {
            Some(n) if n != t.nodes() => Err(Error::config(
                "--topology",
                format!("{} has {} nodes, the run has {n}", t.name, t.nodes()),
            )),
            _ => Ok(t),
        }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.neighbors.len()
    }

    /// The neighbours of node `i` (0-based), ascending.
    pub fn neighbors(&self, i: usize) -> &[usize] {
        &self.neighbors[i]
    }

    /// The undirected edges, each once, `(a, b)` with `a < b`.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        (0..self.nodes())
            .flat_map(|a| {
                self.neighbors[a]
                    .iter()
                    .filter(move |&&b| b > a)
                    .map(move |&b| (a, b))
            })
            .collect()
    }

    /// The Metropolis–Hastings weights: `w_ij = 1 / (1 + max(d_i, d_j))` for neighbours, `w_ii = 1 − Σ_j w_ij`,
    /// zero elsewhere. The matrix is symmetric with rows summing to one, hence doubly stochastic, and its
    /// powers converge to the average because the graph is connected and every `w_ii > 0`.
    pub fn metropolis_hastings(&self) -> Vec<Vec<f64>> {
        let n = self.nodes();
        let mut w = vec![vec![0.0; n]; n];
        for (i, row) in w.iter_mut().enumerate() {
            for &j in &self.neighbors[i] {
                row[j] = 1.0 / (1 + self.neighbors[i].len().max(self.neighbors[j].len())) as f64;
            }
            row[i] = 1.0 - row.iter().sum::<f64>();
        }
        w
    }

    /// Second-largest eigenvalue modulus of the mixing matrix (by power iteration on the space orthogonal to
    /// the all-ones vector): the factor by which disagreement shrinks per averaging round.
    pub fn mixing_rate(&self) -> f64 {
        let w = self.metropolis_hastings();
        let n = self.nodes();
        let mut v: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0).sin()).collect();
        let mut rate = 0.0;
        for _ in 0..500 {
            let mean = v.iter().sum::<f64>() / n as f64;
            v.iter_mut().for_each(|x| *x -= mean);
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                return 0.0;
            }
            v.iter_mut().for_each(|x| *x /= norm);
            let next: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| w[i][j] * v[j]).sum())
                .collect();
            rate = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            v = next;
        }
        rate
    }

    fn reachable_from(&self, start: usize) -> Vec<bool> {
        let mut seen = vec![false; self.nodes()];
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            for &j in &self.neighbors[i] {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let edges: Vec<String> = self
            .edges()
            .iter()
            .map(|(a, b)| format!("{}-{}", a + 1, b + 1))
            .collect();
        write!(
            f,
            "{} ({} nodes: {})",
            self.name,
            self.nodes(),
            edges.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Topology> {
        vec![
            Topology::two_star(),
            Topology::ring(6).unwrap(),
            Topology::ring(2).unwrap(),
            Topology::complete(6).unwrap(),
            Topology::parse("1-2,2-3,3-4,4-1,1-3", None).unwrap(),
        ]
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // indices read as the matrix entries w_ij they are
    fn metropolis_hastings_weights_are_doubly_stochastic_and_symmetric() {
        for t in all() {
            let w = t.metropolis_hastings();
            let n = t.nodes();
            for i in 0..n {
                let row: f64 = w[i].iter().sum();
                let col: f64 = (0..n).map(|j| w[j][i]).sum();
                assert!((row - 1.0).abs() < 1e-12, "{t}: row {i} sums to {row}");
                assert!((col - 1.0).abs() < 1e-12, "{t}: column {i} sums to {col}");
                assert!(w[i][i] > 0.0, "{t}: w_ii");
                for j in 0..n {
                    assert!(w[i][j] >= 0.0);
                    assert_eq!(w[i][j], w[j][i]);
                    let linked = t.neighbors(i).contains(&j);
                    assert_eq!(w[i][j] > 0.0, linked || i == j, "{t}: ({i},{j})");
                }
            }
            let rate = t.mixing_rate();
            assert!(rate < 1.0, "{t}: mixing rate {rate}");
        }
    }

    #[test]
    fn averaging_with_the_weights_reaches_the_mean() {
        let t = Topology::two_star();
        let w = t.metropolis_hastings();
        let mut x = vec![1.0, 5.0, -2.0, 0.0, 7.0, 3.0];
        let mean = x.iter().sum::<f64>() / 6.0;
        for _ in 0..300 {
            x = (0..6)
                .map(|i| (0..6).map(|j| w[i][j] * x[j]).sum())
                .collect();
        }
        assert!(x.iter().all(|v| (v - mean).abs() < 1e-9), "{x:?}");
        // The complete graph mixes faster than the two-star, which mixes faster than... a path of the same size.
        let path = Topology::parse("1-2,2-3,3-4,4-5,5-6", None).unwrap();
        assert!(Topology::complete(6).unwrap().mixing_rate() < t.mixing_rate());
        assert!(t.mixing_rate() < path.mixing_rate());
    }

    #[test]
    fn two_star_is_the_graph_of_the_course() {
        let t = Topology::two_star();
        assert_eq!(t.to_string(), "two-star (6 nodes: 1-3,2-3,3-4,4-5,4-6)");
        assert_eq!(t.neighbors(2), &[0, 1, 3]);
        assert_eq!(Topology::parse("two-star", Some(6)).unwrap(), t);
    }

    #[test]
    fn bad_graphs_are_refused_with_the_reason() {
        let err = |text: &str, nodes| Topology::parse(text, nodes).unwrap_err().to_string();
        assert!(
            err("1-2,3-4", None).contains("not connected: node 3"),
            "{}",
            err("1-2,3-4", None)
        );
        assert!(err("1-2,2-3", Some(4)).contains("node 4 cannot be reached"));
        assert!(err("1-1,1-2", None).contains("self-loop"));
        assert!(err("1-x", None).contains("`1-x` is not an edge"));
        assert!(err("0-1", None).contains("`0-1` is not an edge"));
        assert!(err("two-star", Some(4)).contains("two-star has 6 nodes, the run has 4"));
        assert!(err("ring", None).contains("needs a node count"));
        assert!(err("ring", Some(1)).contains("at least 2 nodes"));
        assert!(err("1-5", Some(3)).contains("beyond the 3 nodes"));
        assert!(err("@/nonexistent/graph.txt", None).contains("/nonexistent/graph.txt"));
    }
}
