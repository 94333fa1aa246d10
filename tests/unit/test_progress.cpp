// The training log line's progress fields: step of total, rates, durations, time left.
#include <catch2/catch.hpp>

#include "app/progress.hpp"

using namespace rewarm;

TEST_CASE("durations and rates read as a person writes them", "[progress]") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(44.6) == "45s");
  CHECK(format_duration(62) == "1m02s");
  CHECK(format_duration(3599) == "59m59s");
  CHECK(format_duration(3 * 3600 + 4 * 60 + 59) == "3h04m");
  CHECK(format_duration(2 * 86400 + 3 * 3600) == "2d03h");
  CHECK(format_duration(-5) == "0s");
  CHECK(format_si(950) == "950");
  CHECK(format_si(41700) == "41.7k");
  CHECK(format_si(1.25e6) == "1.25M");
  CHECK(format_si(3.2e9) == "3.2G");
}

TEST_CASE("progress: step of total, throughput, and time left from the recent steps", "[progress]") {
  Progress p(400, 1e9, 3);  // a window of three steps
  CHECK(p.step_of_total(120) == "120/400 (30%)");
  CHECK(p.step_of_total(7) == "  7/400 (1%)");
  CHECK(p.eta_seconds(10) == 0);  // no step timed yet
  CHECK(p.rates(41700, 1) == "41.7k tok/s | 41.7 TFLOP/s");
  CHECK(p.rates(1000, 1) == "1k tok/s | 1 TFLOP/s");
  CHECK(p.rates(10, 2) == "5 tok/s | 5 GFLOP/s");
  for (double s : {9.0, 1.0, 2.0, 3.0}) p.step_done(s);  // the first falls out of the window
  CHECK(p.recent_step_seconds() == Approx(2.0));
  CHECK(p.eta_seconds(390) == Approx(20.0));
  CHECK(p.eta_seconds(400) == 0);
}
