//! How nodes talk: the [`Transport`] trait, the few operations the algorithms need, implemented once over MPI
//! (`super::mpi`, with the `mpi` feature) and once over threads in one process ([`Threads`]). The algorithms see
//! only this trait, so both paths run the same code.
//!
//! Messages are bytes. A node that fails calls [`Transport::fail`]: with threads every other node's next
//! operation returns an error naming it; with MPI the job is aborted. Nobody waits forever.

use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a node can do with the others. Collective operations must be called by every node (for neighbour
/// operations: every node of the graph) in the same order.
pub trait Transport {
    /// This node's rank, 0-based.
    fn rank(&self) -> usize;
    /// Number of nodes.
    fn size(&self) -> usize;
    /// Sends `msg` to node `to`.
    fn send(&mut self, to: usize, msg: &[u8]) -> Result<()>;
    /// Receives the next message from `from`, or from anyone if `None`; returns the sender and the message.
    fn recv(&mut self, from: Option<usize>) -> Result<(usize, Vec<u8>)>;
    /// Rank 0 receives every other node's message (in rank order, its own first); the others get an empty list.
    fn gather(&mut self, msg: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Rank 0's `msg` reaches every node.
    fn broadcast(&mut self, msg: &mut Vec<u8>) -> Result<()>;
    /// Sends `msg` to every neighbour in the graph given at construction and returns theirs, in the order of
    /// [`super::Topology::neighbors`].
    fn neighbor_allgather(&mut self, msg: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Element-wise sum over all nodes, for measurements (not counted as training traffic).
    fn all_sum(&mut self, values: &mut [f64]) -> Result<()>;
    /// Tells the others this node failed with `reason`; with MPI this ends the job.
    fn fail(&mut self, reason: &str);
}

/// One node's end of an in-process network of threads.
pub struct Threads {
    rank: usize,
    inboxes: Vec<Sender<(usize, Vec<u8>)>>,
    inbox: Receiver<(usize, Vec<u8>)>,
    /// Messages received while waiting for another sender, per sender, in arrival order.
    pending: Vec<VecDeque<Vec<u8>>>,
    neighbors: Vec<usize>,
    failed: Arc<(AtomicBool, Mutex<Option<String>>)>,
}

impl Threads {
    /// `size` connected endpoints; `neighbors(i)` gives node `i`'s neighbours for [`Transport::neighbor_allgather`].
    pub fn network(size: usize, neighbors: impl Fn(usize) -> Vec<usize>) -> Vec<Threads> {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..size).map(|_| channel()).unzip();
        let failed = Arc::new((AtomicBool::new(false), Mutex::new(None)));
        receivers
            .into_iter()
            .enumerate()
            .map(|(rank, inbox)| Threads {
                rank,
                inboxes: senders.clone(),
                inbox,
                pending: vec![VecDeque::new(); size],
                neighbors: neighbors(rank),
                failed: failed.clone(),
            })
            .collect()
    }

    fn check(&self) -> Result<()> {
        if self.failed.0.load(Ordering::Acquire) {
            let why = self.failed.1.lock().map(|g| g.clone()).ok().flatten();
            return Err(Error::Distributed(format!(
                "stopping: {}",
                why.unwrap_or_else(|| "another node failed".into())
            )));
        }
        Ok(())
    }
}

impl Transport for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.inboxes.len()
    }
    fn send(&mut self, to: usize, msg: &[u8]) -> Result<()> {
        self.check()?;
        self.inboxes[to]
            .send((self.rank, msg.to_vec()))
            .map_err(|_| Error::Distributed(format!("node {} has gone", to + 1)))
    }
    fn recv(&mut self, from: Option<usize>) -> Result<(usize, Vec<u8>)> {
        loop {
            let queued = match from {
                Some(f) => self.pending[f].pop_front().map(|m| (f, m)),
                None => (0..self.pending.len())
                    .find_map(|f| self.pending[f].pop_front().map(|m| (f, m))),
            };
            if let Some(m) = queued {
                return Ok(m);
            }
            self.check()?;
            // Wakes up now and then to notice a failed node instead of waiting forever.
            match self.inbox.recv_timeout(Duration::from_millis(20)) {
                Ok((src, msg)) => self.pending[src].push_back(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Distributed("every other node has gone".into()))
                }
            }
        }
    }
    fn gather(&mut self, msg: &[u8]) -> Result<Vec<Vec<u8>>> {
        if self.rank != 0 {
            self.send(0, msg)?;
            return Ok(Vec::new());
        }
        let mut all = vec![msg.to_vec()];
        for r in 1..self.size() {
            all.push(self.recv(Some(r))?.1);
        }
        Ok(all)
    }
    fn broadcast(&mut self, msg: &mut Vec<u8>) -> Result<()> {
        if self.rank == 0 {
            for r in 1..self.size() {
                self.send(r, msg)?;
            }
        } else {
            *msg = self.recv(Some(0))?.1;
        }
        Ok(())
    }
    fn neighbor_allgather(&mut self, msg: &[u8]) -> Result<Vec<Vec<u8>>> {
        for n in self.neighbors.clone() {
            self.send(n, msg)?;
        }
        let mut out = Vec::with_capacity(self.neighbors.len());
        for n in self.neighbors.clone() {
            out.push(self.recv(Some(n))?.1);
        }
        Ok(out)
    }
    fn all_sum(&mut self, values: &mut [f64]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let all = self.gather(&bytes)?;
        let mut total = Vec::new();
        if self.rank == 0 {
            let mut sum = vec![0f64; values.len()];
            for m in &all {
                for (s, c) in sum.iter_mut().zip(m.chunks_exact(8)) {
                    *s += f64::from_le_bytes(c.try_into().expect("8 bytes"));
                }
            }
            total = sum.iter().flat_map(|v| v.to_le_bytes()).collect();
        }
        self.broadcast(&mut total)?;
        for (v, c) in values.iter_mut().zip(total.chunks_exact(8)) {
            *v = f64::from_le_bytes(c.try_into().expect("8 bytes"));
        }
        Ok(())
    }
    fn fail(&mut self, reason: &str) {
        if let Ok(mut why) = self.failed.1.lock() {
            why.get_or_insert_with(|| format!("node {} failed: {reason}", self.rank + 1));
        }
        self.failed.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectives_over_threads() {
        let nets = Threads::network(4, |i| vec![(i + 1) % 4, (i + 3) % 4]);
        let out: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = nets
                .into_iter()
                .map(|mut t| {
                    s.spawn(move || {
                        let r = t.rank() as u8;
                        let g = t.gather(&[r]).unwrap();
                        let mut b = if r == 0 { vec![7, 7] } else { vec![] };
                        t.broadcast(&mut b).unwrap();
                        let n = t.neighbor_allgather(&[r, r]).unwrap();
                        let mut v = [f64::from(r), 1.0];
                        t.all_sum(&mut v).unwrap();
                        (g, b, n, v)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(out[0].0, vec![vec![0], vec![1], vec![2], vec![3]]);
        assert!(out[1].0.is_empty());
        for (r, (_, b, n, v)) in out.iter().enumerate() {
            assert_eq!(b, &vec![7, 7]);
            let (a, z) = (((r + 1) % 4) as u8, ((r + 3) % 4) as u8);
            assert_eq!(n, &vec![vec![a, a], vec![z, z]]);
            assert_eq!(v, &[6.0, 4.0]);
        }
    }

    #[test]
    fn a_failing_node_stops_the_others() {
        let nets = Threads::network(3, |_| vec![]);
        let errs: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = nets
                .into_iter()
                .map(|mut t| {
                    s.spawn(move || {
                        if t.rank() == 2 {
                            t.fail("out of memory");
                            return "failed".to_string();
                        }
                        // Waits for node 3, which never sends.
                        t.recv(Some(2)).unwrap_err().to_string()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(errs[0], "stopping: node 3 failed: out of memory");
        assert_eq!(errs[1], errs[0]);
    }
}
