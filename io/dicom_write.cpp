#include "io/dicom_write.h"

#include <gdcmAttribute.h>
#include <gdcmDataSet.h>
#include <gdcmFileMetaInformation.h>
#include <gdcmImage.h>
#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageWriter.h>
#include <gdcmJPEG2000Codec.h>
#include <gdcmJPEGCodec.h>
#include <gdcmReader.h>
#include <gdcmWriter.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

#include <cstring>
#include <mutex>
#include <sstream>

#include "io/atomic_file.h"
#include "tensor/errors.h"

namespace sx::io {

const char* dicom_codec_name(DicomCodec c) {
  switch (c) {
    case DicomCodec::ExplicitLE: return "explicit-le";
    case DicomCodec::ImplicitLE: return "implicit-le";
    case DicomCodec::ExplicitBE: return "explicit-be";
    case DicomCodec::Deflate: return "deflate";
    case DicomCodec::Rle: return "rle";
    case DicomCodec::JpegLossless: return "jpeg-lossless";
    case DicomCodec::JpegBaseline: return "jpeg-baseline";
    case DicomCodec::JpegLsLossless: return "jpeg-ls";
    case DicomCodec::Jpeg2000Lossless: return "j2k-lossless";
    case DicomCodec::Jpeg2000: return "j2k";
  }
  return "?";
}

namespace {

void put_string(gdcm::DataSet& ds, uint16_t g, uint16_t e, gdcm::VR vr, std::string v) {
  if (v.size() % 2) v.push_back(vr == gdcm::VR::UI ? '\0' : ' ');
  gdcm::DataElement de(gdcm::Tag(g, e));
  de.SetVR(vr);
  de.SetByteValue(v.data(), static_cast<uint32_t>(v.size()));
  ds.Replace(de);
}

std::string ds_str(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

gdcm::TransferSyntax to_ts(DicomCodec c, int bits_stored) {
  switch (c) {
    case DicomCodec::ExplicitLE: return gdcm::TransferSyntax::ExplicitVRLittleEndian;
    case DicomCodec::ImplicitLE: return gdcm::TransferSyntax::ImplicitVRLittleEndian;
    case DicomCodec::ExplicitBE: return gdcm::TransferSyntax::ExplicitVRBigEndian;
    case DicomCodec::Deflate: return gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian;
    case DicomCodec::Rle: return gdcm::TransferSyntax::RLELossless;
    case DicomCodec::JpegLossless: return gdcm::TransferSyntax::JPEGLosslessProcess14_1;
    case DicomCodec::JpegBaseline:
      return bits_stored <= 8 ? gdcm::TransferSyntax::JPEGBaselineProcess1 : gdcm::TransferSyntax::JPEGExtendedProcess2_4;
    case DicomCodec::JpegLsLossless: return gdcm::TransferSyntax::JPEGLSLossless;
    case DicomCodec::Jpeg2000Lossless: return gdcm::TransferSyntax::JPEG2000Lossless;
    case DicomCodec::Jpeg2000: return gdcm::TransferSyntax::JPEG2000;
  }
  return gdcm::TransferSyntax::ExplicitVRLittleEndian;
}

}  // namespace

std::string encode_dicom(const void* pixels, const DicomWriteSpec& s) {
  static std::once_flag once;
  std::call_once(once, [] {
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetError(false);
  });
  SX_CHECK(s.rows > 0 && s.columns > 0 && s.rows <= 65535 && s.columns <= 65535, "write_dicom: bad size ", s.rows,
           " x ", s.columns);
  SX_CHECK(s.bits_allocated == 8 || s.bits_allocated == 16, "write_dicom: bits_allocated must be 8 or 16, got ",
           s.bits_allocated);
  SX_CHECK(s.bits_stored >= 1 && s.bits_stored <= s.bits_allocated, "write_dicom: bits_stored ", s.bits_stored,
           " with bits_allocated ", s.bits_allocated);
  SX_CHECK(s.photometric == "MONOCHROME1" || s.photometric == "MONOCHROME2", "write_dicom: photometric must be MONOCHROME1/2, got ",
           s.photometric);
  SX_CHECK(!s.study_uid.empty() && !s.series_uid.empty() && !s.sop_uid.empty(),
           "write_dicom: study/series/SOP UIDs are required (deterministic output)");
  SX_CHECK(pixels != nullptr, "write_dicom: null pixels");

  const size_t nbytes = static_cast<size_t>(s.rows) * s.columns * (s.bits_allocated / 8);
  gdcm::SmartPointer<gdcm::Image> im = new gdcm::Image;
  im->SetNumberOfDimensions(2);
  im->SetDimension(0, static_cast<unsigned>(s.columns));
  im->SetDimension(1, static_cast<unsigned>(s.rows));
  im->SetPixelFormat(gdcm::PixelFormat(1, static_cast<unsigned short>(s.bits_allocated),
                                       static_cast<unsigned short>(s.bits_stored),
                                       static_cast<unsigned short>(s.bits_stored - 1),
                                       static_cast<unsigned short>(s.pixel_representation)));
  im->SetPhotometricInterpretation(s.photometric == "MONOCHROME1" ? gdcm::PhotometricInterpretation::MONOCHROME1
                                                                  : gdcm::PhotometricInterpretation::MONOCHROME2);
  im->SetTransferSyntax(s.codec == DicomCodec::ImplicitLE ? gdcm::TransferSyntax::ImplicitVRLittleEndian
                        : s.codec == DicomCodec::Deflate  ? gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian
                                                          : gdcm::TransferSyntax::ExplicitVRLittleEndian);
  gdcm::DataElement pde(gdcm::Tag(0x7fe0, 0x0010));
  pde.SetVR(s.bits_allocated == 16 ? gdcm::VR::OW : gdcm::VR::OB);
  pde.SetByteValue(static_cast<const char*>(pixels), static_cast<uint32_t>(nbytes));
  im->SetDataElement(pde);
  im->SetSlope(s.rescale_slope);
  im->SetIntercept(s.rescale_intercept);
  if (s.pixel_spacing > 0) {
    im->SetSpacing(0, s.pixel_spacing);
    im->SetSpacing(1, s.pixel_spacing);
  }

  const gdcm::TransferSyntax ts = to_ts(s.codec, s.bits_stored);
  gdcm::SmartPointer<gdcm::Image> out = im;
  gdcm::ImageChangeTransferSyntax change;
  gdcm::JPEG2000Codec j2k;
  gdcm::JPEGCodec jpeg;
  if (s.codec != DicomCodec::ExplicitLE && s.codec != DicomCodec::ImplicitLE && s.codec != DicomCodec::Deflate) {
    change.SetTransferSyntax(ts);
    change.SetInput(*im);
    if (s.codec == DicomCodec::Jpeg2000) {
      j2k.SetRate(0, 10.0);  // lossy: about 10:1
      j2k.SetReversible(false);
      change.SetUserCodec(&j2k);
    } else if (s.codec == DicomCodec::JpegBaseline) {
      jpeg.SetLossless(false);
      jpeg.SetQuality(90);
      change.SetUserCodec(&jpeg);
    }
    if (!change.Change())
      SX_THROW(IOError, "write_dicom: GDCM could not encode ", dicom_codec_name(s.codec), " (", s.rows, " x ", s.columns,
               ", ", s.bits_stored, " bits)");
    out = new gdcm::Image(change.GetOutput());
    out->SetSlope(s.rescale_slope);
    out->SetIntercept(s.rescale_intercept);
  }

  gdcm::ImageWriter w;
  w.SetImage(*out);
  gdcm::File& file = w.GetFile();
  gdcm::DataSet& ds = file.GetDataSet();
  put_string(ds, 0x0008, 0x0016, gdcm::VR::UI, s.sop_class_uid);
  put_string(ds, 0x0008, 0x0018, gdcm::VR::UI, s.sop_uid);
  if (s.write_modality) put_string(ds, 0x0008, 0x0060, gdcm::VR::CS, s.modality);
  put_string(ds, 0x0010, 0x0040, gdcm::VR::CS, s.sex);
  put_string(ds, 0x0010, 0x1010, gdcm::VR::AS, s.age);
  put_string(ds, 0x0020, 0x000d, gdcm::VR::UI, s.study_uid);
  put_string(ds, 0x0020, 0x000e, gdcm::VR::UI, s.series_uid);
  if (s.pixel_spacing > 0) put_string(ds, 0x0028, 0x0030, gdcm::VR::DS, ds_str(s.pixel_spacing) + "\\" + ds_str(s.pixel_spacing));
  if (s.write_window) {
    put_string(ds, 0x0028, 0x1050, gdcm::VR::DS, ds_str(s.window_center));
    put_string(ds, 0x0028, 0x1051, gdcm::VR::DS, ds_str(s.window_width));
  }
  if (s.write_rescale) {
    put_string(ds, 0x0028, 0x1052, gdcm::VR::DS, ds_str(s.rescale_intercept));
    put_string(ds, 0x0028, 0x1053, gdcm::VR::DS, ds_str(s.rescale_slope));
    put_string(ds, 0x0028, 0x1054, gdcm::VR::LO, "US");
  }
  // GDCM's ImageWriter fills type-1/2 attributes it finds missing; the study date and time would
  // be today's, so they are given here (fixed) to keep the output deterministic.
  put_string(ds, 0x0008, 0x0020, gdcm::VR::DA, s.study_date);
  put_string(ds, 0x0008, 0x0030, gdcm::VR::TM, s.study_time);
  std::ostringstream os;
  w.SetStream(os);
  if (!w.Write()) SX_THROW(IOError, "write_dicom: GDCM failed to write the ", dicom_codec_name(s.codec), " file");
  if (s.write_modality) return os.str();
  // The ImageWriter always inserts a Modality; the VinDr release has none, so read the data set
  // back (no pixel decoding) and write it again without that element.
  std::string bytes = os.str();
  std::istringstream is(bytes);
  gdcm::Reader r;
  r.SetStream(is);
  if (!r.Read()) SX_THROW(IOError, "write_dicom: cannot re-read GDCM's own output");
  r.GetFile().GetDataSet().Remove(gdcm::Tag(0x0008, 0x0060));
  gdcm::Writer w2;
  w2.SetFile(r.GetFile());
  std::ostringstream os2;
  w2.SetStream(os2);
  if (!w2.Write()) SX_THROW(IOError, "write_dicom: GDCM failed to write the ", dicom_codec_name(s.codec), " file");
  return os2.str();
}

void write_dicom(const std::string& path, const void* pixels, const DicomWriteSpec& spec) {
  write_file_atomic(path, encode_dicom(pixels, spec));
}

}  // namespace sx::io
