// The communicator of the comm tests' run (all its ranks), made by test_comm.cpp's main.
#pragma once
#include "parallel/comm.hpp"

extern rewarm::Comm* world;
