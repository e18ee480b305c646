// spinexr info: print the metadata of DICOM (or PNG/JPEG) files.
#include <cctype>
#include <cstdio>
#include <string>

#include "io/dicom.h"
#include "io/image_io.h"
#include "tensor/errors.h"
#include "train/app/cli/cli.h"

namespace {

bool has_suffix(const std::string& s, const std::string& suf) {
  if (s.size() < suf.size()) return false;
  for (size_t i = 0; i < suf.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suf.size() + i])) != suf[i]) return false;
  return true;
}

int run_info(int argc, char** argv) {
  sx::cli::Args args("info", "Print the metadata of DICOM files (rows, columns, bits, photometric interpretation,\n"
                             "pixel spacing, window, rescale, sex, age, UIDs) or the size of PNG/JPEG files.");
  args.positional("FILE...", "files to describe", true).flag("pixels", "also decode the pixels and print their range");
  if (!args.parse(argc, argv)) return 0;
  if (args.positionals().empty()) throw sx::ValueError("info: give at least one FILE");
  for (const std::string& f : args.positionals()) {
    if (has_suffix(f, ".png") || has_suffix(f, ".jpg") || has_suffix(f, ".jpeg")) {
      sx::io::GreyImage g = sx::io::read_image(f);
      std::printf("path: %s\nwidth: %d\nheight: %d\nbit_depth: %d\n\n", f.c_str(), g.width, g.height, g.bit_depth);
      continue;
    }
    if (args.get_flag("pixels")) {
      sx::io::DicomImage img = sx::io::read_dicom(f);
      std::printf("%s", img.info.str().c_str());
      std::printf("modality_value_min: %g\nmodality_value_max: %g\nstored_range: [%g, %g]\n\n", img.min_value,
                  img.max_value, img.range_lo, img.range_hi);
    } else {
      std::printf("%s\n", sx::io::read_dicom_info(f).str().c_str());
    }
  }
  return 0;
}

const sx::cli::Registrar kRegister("info", "print DICOM metadata", run_info);

}  // namespace
