// printf-style formatting into a std::string, for the tables and messages the reports print
// (stats, the train-det coverage guard, explain). Any length: the buffer is sized by a first pass.
#pragma once
#include <string>

namespace sx::train {

std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace sx::train
