//! [`Collective`] over MPI (the `mpi` crate over the system's MPI library):
//! `MPI_Alltoallv` and `MPI_Allgatherv` on the world communicator.
//!
//! MPI's own reductions are not used: their order of summation depends on
//! the number of processes and the algorithm chosen, and [`crate::dist`]
//! needs one fixed order. A process that dies ends the job (MPI's default
//! error handler), so no call here waits forever on a dead rank.

use super::Collective;
use crate::error::{Error, Result};
use mpi::Threading;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Equivalence};

/// The processes started together by `mpirun`, all training one model.
/// MPI is finalised when this is dropped.
pub struct MpiWorld {
    _universe: Universe,
    rank: usize,
    ranks: usize,
}

impl std::fmt::Debug for MpiWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MpiWorld {{ rank: {}, ranks: {} }}",
            self.rank, self.ranks
        )
    }
}

/// Whether this process was started by an MPI launcher (`mpirun`,
/// `mpiexec`, `srun`): Open MPI's, PMIx's or PMI's rank variable is set.
pub fn launched() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

impl MpiWorld {
    /// Initialises MPI (calls from one thread at a time: the training loop
    /// runs on a thread of the rayon pool).
    ///
    /// # Errors
    /// [`Error::Config`] if MPI was initialised already or does not offer
    /// serialised calls from several threads.
    pub fn init() -> Result<MpiWorld> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::config("mpi", "MPI is initialised already"))?;
        if level < Threading::Serialized {
            return Err(Error::config(
                "mpi",
                format!("the MPI library offers {level:?} threading; training needs Serialized"),
            ));
        }
        let world = universe.world();
        Ok(MpiWorld {
            rank: world.rank() as usize,
            ranks: world.size() as usize,
            _universe: universe,
        })
    }
}

/// MPI's counts and displacements (32-bit) of parts of `counts` values.
fn layout(counts: &[usize]) -> Result<(Vec<i32>, Vec<i32>)> {
    let too_many = || {
        Error::config(
            "mpi",
            "an exchange of more than 2^31 − 1 values: use more micro-batches or ranks",
        )
    };
    let mut displs = Vec::with_capacity(counts.len());
    let mut at = 0usize;
    for &c in counts {
        displs.push(i32::try_from(at).map_err(|_| too_many())?);
        at += c;
    }
    i32::try_from(at).map_err(|_| too_many())?;
    let counts = counts.iter().map(|&c| c as i32).collect();
    Ok((counts, displs))
}

fn all_gather_v<T: Equivalence>(send: &[T], recv: &mut [T], counts: &[usize]) -> Result<()> {
    let (c, d) = layout(counts)?;
    let mut part = PartitionMut::new(recv, c, d);
    SimpleCommunicator::world().all_gather_varcount_into(send, &mut part);
    Ok(())
}

impl Collective<f32> for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn ranks(&self) -> usize {
        self.ranks
    }
    fn all_to_all(
        &mut self,
        send: &[f32],
        send_counts: &[usize],
        recv: &mut [f32],
        recv_counts: &[usize],
    ) -> Result<()> {
        let (sc, sd) = layout(send_counts)?;
        let (rc, rd) = layout(recv_counts)?;
        let part = Partition::new(send, sc, sd);
        let mut into = PartitionMut::new(recv, rc, rd);
        SimpleCommunicator::world().all_to_all_varcount_into(&part, &mut into);
        Ok(())
    }
    fn all_gather(&mut self, send: &[f32], recv: &mut [f32], counts: &[usize]) -> Result<()> {
        all_gather_v(send, recv, counts)
    }
    fn all_gather_bytes(&mut self, send: &[u8], recv: &mut [u8], counts: &[usize]) -> Result<()> {
        all_gather_v(send, recv, counts)
    }
}
