// A structural check of a DICOM file's bytes, run before GDCM sees them.
//
// Debian's GDCM is built with live assertions: on a truncated or corrupt file it can abort the whole
// process (gdcmFileMetaInformation.cxx "is.good()", gdcmExplicitDataElement.txx "Should not happen"
// ...). Library code must never abort, so every file is walked here first, element by element, in
// its own transfer syntax (explicit/implicit little endian, explicit big endian, deflate after
// inflating), through nested sequences and encapsulated pixel data. The walk checks that every tag,
// VR and length fits in the file, that VRs are valid, and that undefined-length sequences and items
// are properly delimited. A file that passes has a sound structure, so GDCM's parser never reads past
// the end; the checks of the values themselves (sizes, codestreams) come after, in dicom.cpp and
// dicom_codestream.cpp.
#pragma once
#include <cstdint>
#include <string>

namespace sx::io {

struct DicomScan {
  int64_t dataset_offset = 0;     // where the data set starts (after preamble + meta group)
  std::string transfer_syntax;    // from the meta group ("" when the file has none)
  bool reached_pixel_data = false;
  int64_t pixel_data_offset = -1; // offset of the (7FE0,0010) element's tag, top level
};

// Walks `size` bytes of a file. With stop_at_pixel_data, the walk ends at the top-level pixel data
// element (for header-only reads of a file prefix) and `incomplete` is set when the buffer ends
// before it is reached. Throws sx::IOError "NAME: reason (offset N)".
DicomScan scan_dicom(const unsigned char* data, int64_t size, const std::string& name, bool stop_at_pixel_data,
                     bool* incomplete = nullptr);

}  // namespace sx::io
