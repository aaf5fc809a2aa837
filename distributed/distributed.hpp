#pragma once
/// \file distributed.hpp
/// Umbrella header of tapegrad::distributed: collectives over MPI (comm.hpp; a world of one
/// process without MPI) and data-parallel training.
#include "distributed/comm.hpp"
#include "distributed/ddp.hpp"
