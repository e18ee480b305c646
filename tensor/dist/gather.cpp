// all_gather_bytes (gather.h): the lengths, then the bytes as padded int64 words.
#include "tensor/dist/gather.h"

#include <algorithm>

namespace sx::dist {

std::vector<std::string> all_gather_bytes(ProcessGroup& pg, const std::string& mine, Device device) {
  if (pg.size() == 1) return {mine};
  Tensor len = Tensor::full({1}, static_cast<double>(mine.size()), DType::Int64);
  const Tensor lens = pg.all_gather(len.to(device)).cpu().contiguous();  // [W, 1]
  const int64_t* lp = lens.data<int64_t>();
  const int64_t longest = *std::max_element(lp, lp + pg.size());
  const int64_t words = std::max<int64_t>(1, (longest + 7) / 8);
  Tensor buf = Tensor::zeros({words}, DType::Int64);
  std::memcpy(buf.data_ptr(), mine.data(), mine.size());
  const Tensor all = pg.all_gather(buf.to(device)).cpu().contiguous();  // [W, words]
  std::vector<std::string> out;
  const char* base = static_cast<const char*>(all.data_ptr());
  for (int r = 0; r < pg.size(); ++r)
    out.emplace_back(base + static_cast<size_t>(r) * static_cast<size_t>(words) * 8, static_cast<size_t>(lp[r]));
  return out;
}

}  // namespace sx::dist
