// spinexr convert: a DICOM to an 8-bit windowed PNG, a 16-bit PNG, or float32 .npy modality values.
#include <cmath>
#include <cstdio>
#include <string>

#include "io/dicom.h"
#include "io/image_io.h"
#include "io/npy.h"
#include "io/transforms.h"
#include "tensor/errors.h"
#include "train/app/cli/cli.h"

namespace {

bool has_suffix(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

int run_convert(int argc, char** argv) {
  sx::cli::Args args("convert",
                     "Convert a DICOM file: OUT.png is the windowed image (bone bright; 8-bit, or 16-bit with --16bit);\n"
                     "OUT.npy holds the float32 modality values (after rescale, before windowing) for NumPy.");
  args.positional("FILE", "input DICOM")
      .positional("OUT", "output .png or .npy")
      .option("window", "dicom", "windowing for PNG: none, dicom, minmax or percentile")
      .option("size", "0", "PNG only: resize so the longest side is at most this (0: original size)")
      .flag("16bit", "write a 16-bit PNG");
  if (!args.parse(argc, argv)) return 0;
  if (args.positionals().size() != 2) throw sx::ValueError("convert: expected FILE and OUT");
  const std::string in = args.positionals()[0], out = args.positionals()[1];
  sx::io::DicomImage img = sx::io::read_dicom(in);
  const int w = img.info.columns, h = img.info.rows;
  if (has_suffix(out, ".npy")) {
    sx::io::write_npy_f32(out, img.values.data(), {h, w});
    std::printf("wrote %s: float32 [%d, %d] modality values in [%g, %g]\n", out.c_str(), h, w, img.min_value, img.max_value);
    return 0;
  }
  if (!has_suffix(out, ".png")) throw sx::ValueError("convert: OUT must end in .png or .npy, got '" + out + "'");
  sx::io::WindowOptions wo;
  wo.mode = sx::io::parse_window_mode(args.get("window"));
  sx::io::WindowUsed used;
  sx::io::GreyF g;
  g.width = w;
  g.height = h;
  g.px = sx::io::window_image(img, wo, &used);
  const int64_t size = args.get_int("size");
  if (size > 0 && std::max(w, h) > size) {
    const double s = static_cast<double>(size) / std::max(w, h);
    g = sx::io::resize_image(g, std::max(1, static_cast<int>(std::lround(w * s))), std::max(1, static_cast<int>(std::lround(h * s))));
  }
  const size_t n = g.px.size();
  if (args.get_flag("16bit")) {
    std::vector<uint16_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint16_t>(std::lround(std::min(1.0f, std::max(0.0f, g.px[i])) * 65535.0f));
    sx::io::write_png16(out, v.data(), g.width, g.height);
  } else {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(std::lround(std::min(1.0f, std::max(0.0f, g.px[i])) * 255.0f));
    sx::io::write_png(out, v.data(), g.width, g.height, 1);
  }
  std::printf("wrote %s: %d x %d, %s PNG, window %s (center %g, width %g)\n", out.c_str(), g.width, g.height,
              args.get_flag("16bit") ? "16-bit" : "8-bit", used.source.c_str(), used.center, used.width);
  return 0;
}

const sx::cli::Registrar kRegister("convert", "convert a DICOM to PNG (8/16-bit) or .npy", run_convert);

}  // namespace
