//! The MPI [`Transport`] (feature `mpi`): point-to-point messages and collectives through the `mpi` crate over
//! Open MPI, and the decentralized exchange through a distributed graph topology
//! (`MPI_Dist_graph_create_adjacent`) and neighbourhood collectives (`MPI_Neighbor_allgather(v)`), which the
//! crate does not wrap: those three calls go through its raw bindings, the only `unsafe` in this crate.
//!
//! Failure handling: [`run`] first checks the job on every rank and agrees on the verdict with one reduction,
//! so a bad topology or node count is reported by every rank and all exit without a hang; an error after
//! training has started aborts the whole job (`MPI_Abort`) after printing it.

use super::{Algorithm, DistEpoch, DistTrained, Job, Transport};
use crate::data::Split;
use crate::error::{Error, Result};
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::PartitionMut;
use mpi::point_to_point::{Destination, Source};
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};
use std::os::raw::c_int;

/// One rank's end of an MPI job.
pub struct Mpi {
    world: SimpleCommunicator,
    /// The distributed graph communicator of the decentralized topology, if any.
    graph: Option<mpi::ffi::MPI_Comm>,
    neighbors: Vec<usize>,
}

fn check(code: c_int, what: &str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::Distributed(format!(
            "{what} failed with MPI error {code}"
        )))
    }
}

impl Mpi {
    /// Over `world`; with `neighbors` (this rank's, ascending) a distributed graph communicator is created
    /// (collectively: every rank must call this).
    pub fn new(world: SimpleCommunicator, neighbors: Option<Vec<usize>>) -> Result<Mpi> {
        let mut graph = None;
        if let Some(n) = &neighbors {
            let ranks: Vec<c_int> = n.iter().map(|&r| r as c_int).collect();
            let weights = vec![1 as c_int; ranks.len()];
            let mut comm = std::mem::MaybeUninit::<mpi::ffi::MPI_Comm>::uninit();
            // SAFETY: the arrays outlive the call and hold `degree` entries each; `comm` is written by MPI on
            // success (checked) before it is read. No reordering: graph ranks are world ranks.
            let comm = unsafe {
                check(
                    mpi::ffi::MPI_Dist_graph_create_adjacent(
                        world.as_raw(),
                        ranks.len() as c_int,
                        ranks.as_ptr(),
                        weights.as_ptr(),
                        ranks.len() as c_int,
                        ranks.as_ptr(),
                        weights.as_ptr(),
                        mpi::ffi::RSMPI_INFO_NULL,
                        0,
                        comm.as_mut_ptr(),
                    ),
                    "MPI_Dist_graph_create_adjacent",
                )?;
                comm.assume_init()
            };
            graph = Some(comm);
        }
        Ok(Mpi {
            world,
            graph,
            neighbors: neighbors.unwrap_or_default(),
        })
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        if let Some(mut comm) = self.graph.take() {
            // SAFETY: a communicator this value created and nobody else holds.
            unsafe {
                mpi::ffi::MPI_Comm_free(&mut comm);
            }
        }
    }
}

fn len_i32(len: usize) -> Result<i32> {
    i32::try_from(len)
        .map_err(|_| Error::Distributed(format!("a message of {len} bytes is too long for MPI")))
}

impl Transport for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn send(&mut self, to: usize, msg: &[u8]) -> Result<()> {
        len_i32(msg.len())?;
        self.world.process_at_rank(to as i32).send(msg);
        Ok(())
    }
    fn recv(&mut self, from: Option<usize>) -> Result<(usize, Vec<u8>)> {
        let (msg, status) = match from {
            Some(f) => self.world.process_at_rank(f as i32).receive_vec::<u8>(),
            None => self.world.any_process().receive_vec::<u8>(),
        };
        Ok((status.source_rank() as usize, msg))
    }
    fn gather(&mut self, msg: &[u8]) -> Result<Vec<Vec<u8>>> {
        let root = self.world.process_at_rank(0);
        let len = len_i32(msg.len())?;
        if self.rank() != 0 {
            root.gather_into(&len);
            root.gather_varcount_into(msg);
            return Ok(Vec::new());
        }
        let mut counts = vec![0i32; self.size()];
        root.gather_into_root(&len, &mut counts[..]);
        let displs: Vec<i32> = counts
            .iter()
            .scan(0i32, |at, &c| {
                let d = *at;
                *at = at.saturating_add(c);
                Some(d)
            })
            .collect();
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        len_i32(total)?;
        let mut buf = vec![0u8; total];
        {
            let mut part = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(msg, &mut part);
        }
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| buf[d as usize..(d + c) as usize].to_vec())
            .collect())
    }
    fn broadcast(&mut self, msg: &mut Vec<u8>) -> Result<()> {
        let root = self.world.process_at_rank(0);
        let mut len = len_i32(msg.len())?;
        root.broadcast_into(&mut len);
        msg.resize(len as usize, 0);
        root.broadcast_into(&mut msg[..]);
        Ok(())
    }
    fn neighbor_allgather(&mut self, msg: &[u8]) -> Result<Vec<Vec<u8>>> {
        let comm = self.graph.ok_or_else(|| {
            Error::Distributed("a neighbour exchange without a graph topology".into())
        })?;
        let degree = self.neighbors.len();
        let len = len_i32(msg.len())?;
        let mut counts = vec![0 as c_int; degree];
        // SAFETY: one int sent, one int received per neighbour into `counts` (degree entries).
        check(
            unsafe {
                mpi::ffi::MPI_Neighbor_allgather(
                    (&len as *const i32).cast(),
                    1,
                    mpi::ffi::RSMPI_INT32_T,
                    counts.as_mut_ptr().cast(),
                    1,
                    mpi::ffi::RSMPI_INT32_T,
                    comm,
                )
            },
            "MPI_Neighbor_allgather",
        )?;
        if counts.iter().any(|&c| c < 0) {
            return Err(Error::Distributed(
                "a neighbour announced a negative length".into(),
            ));
        }
        let mut displs = Vec::with_capacity(degree);
        let mut total = 0usize;
        for &c in &counts {
            displs.push(len_i32(total)?);
            total += c as usize;
        }
        len_i32(total)?;
        let mut buf = vec![0u8; total];
        // SAFETY: `msg` holds `len` bytes; `buf` holds the sum of `counts`, laid out by `displs`.
        check(
            unsafe {
                mpi::ffi::MPI_Neighbor_allgatherv(
                    msg.as_ptr().cast(),
                    len,
                    mpi::ffi::RSMPI_UINT8_T,
                    buf.as_mut_ptr().cast(),
                    counts.as_ptr(),
                    displs.as_ptr(),
                    mpi::ffi::RSMPI_UINT8_T,
                    comm,
                )
            },
            "MPI_Neighbor_allgatherv",
        )?;
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| buf[d as usize..d as usize + c as usize].to_vec())
            .collect())
    }
    fn all_sum(&mut self, values: &mut [f64]) -> Result<()> {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
        Ok(())
    }
    fn fail(&mut self, reason: &str) {
        eprintln!(
            "slimnet: rank {} of {} failed: {reason}; aborting the job",
            self.rank() + 1,
            self.size()
        );
        self.world.abort(1)
    }
}

/// Runs the job `make(size)` builds on this rank of the MPI job: checks it (all ranks agree before any training
/// message), shards the training split, trains. Returns `Ok(Some(model))` on rank 0, `Ok(None)` elsewhere.
/// `on_epoch` runs on rank 0.
pub fn run<'a>(
    make: impl FnOnce(usize) -> Result<Job<'a>>,
    split: &Split,
    on_epoch: &mut dyn FnMut(&DistEpoch),
) -> Result<Option<DistTrained>> {
    let universe = mpi::initialize()
        .ok_or_else(|| Error::Distributed("MPI was already initialized in this process".into()))?;
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    // Every rank checks, then all agree: a rank that found a problem says what; the others say who stopped.
    let verdict = make(size).and_then(|job| job.check(size, split.train.count).map(|()| job));
    let mine = [f64::from(u8::from(verdict.is_err()))];
    let mut failed = [0f64];
    world.all_reduce_into(&mine[..], &mut failed[..], SystemOperation::sum());
    let job = match verdict {
        Ok(job) => job,
        Err(e) => {
            return Err(Error::Distributed(format!(
                "rank {} of {size}: {e}",
                rank + 1
            )))
        }
    };
    if failed[0] > 0.0 {
        return Err(Error::Distributed(format!(
            "rank {} of {size}: stopping: {} other rank(s) refused the job",
            rank + 1,
            failed[0]
        )));
    }
    let shards =
        super::shard::shard_indices(split.train.count, job.data_nodes(size), job.config.seed)?;
    let shard =
        super::shard_of(&job, rank, &shards).map(|idx| super::shard::subset(&split.train, idx));
    let neighbors = match &job.algorithm {
        Algorithm::Decentralized { topology, .. } => Some(topology.neighbors(rank).to_vec()),
        Algorithm::MasterWorker { .. } => None,
    };
    let mut t = Mpi::new(world, neighbors)?;
    let val = (rank == 0).then_some(&split.val);
    match super::run_node(&job, &mut t, shard.as_ref(), val, on_epoch) {
        Ok(r) => Ok(r),
        Err(e) => {
            t.fail(&e.to_string());
            Err(e)
        }
    }
}
