#include "io/j2k_reduced.h"

#include <algorithm>
#include <cstring>

#ifdef SX_HAVE_OPENJPEG
#include <openjpeg.h>
#endif

namespace sx::io {

#ifdef SX_HAVE_OPENJPEG
namespace {

struct MemStream {
  const uint8_t* data;
  size_t size, pos;
};

OPJ_SIZE_T mem_read(void* buf, OPJ_SIZE_T n, void* user) {
  auto* m = static_cast<MemStream*>(user);
  if (m->pos >= m->size) return static_cast<OPJ_SIZE_T>(-1);
  size_t k = std::min(static_cast<size_t>(n), m->size - m->pos);
  std::memcpy(buf, m->data + m->pos, k);
  m->pos += k;
  return k;
}
OPJ_OFF_T mem_skip(OPJ_OFF_T n, void* user) {
  auto* m = static_cast<MemStream*>(user);
  if (n < 0) {
    if (static_cast<size_t>(-n) > m->pos) return -1;
    m->pos -= static_cast<size_t>(-n);
    return n;
  }
  size_t k = std::min(static_cast<size_t>(n), m->size - m->pos);
  m->pos += k;
  return static_cast<OPJ_OFF_T>(k);
}
OPJ_BOOL mem_seek(OPJ_OFF_T n, void* user) {
  auto* m = static_cast<MemStream*>(user);
  if (n < 0 || static_cast<size_t>(n) > m->size) return OPJ_FALSE;
  m->pos = static_cast<size_t>(n);
  return OPJ_TRUE;
}
void quiet(const char*, void*) {}

struct Session {
  MemStream ms;
  opj_stream_t* stream = nullptr;
  opj_codec_t* codec = nullptr;
  opj_image_t* image = nullptr;
  Session(const uint8_t* d, size_t n) : ms{d, n, 0} {}
  ~Session() {
    if (image) opj_image_destroy(image);
    if (codec) opj_destroy_codec(codec);
    if (stream) opj_stream_destroy(stream);
  }
  bool open(int reduce, int threads) {
    stream = opj_stream_create(1 << 16, OPJ_TRUE);
    if (!stream) return false;
    opj_stream_set_user_data(stream, &ms, nullptr);
    opj_stream_set_user_data_length(stream, ms.size);
    opj_stream_set_read_function(stream, mem_read);
    opj_stream_set_skip_function(stream, mem_skip);
    opj_stream_set_seek_function(stream, mem_seek);
    codec = opj_create_decompress(OPJ_CODEC_J2K);
    if (!codec) return false;
    opj_set_error_handler(codec, quiet, nullptr);
    opj_set_warning_handler(codec, quiet, nullptr);
    opj_set_info_handler(codec, quiet, nullptr);
    opj_dparameters_t p;
    opj_set_default_decoder_parameters(&p);
    p.cp_reduce = static_cast<OPJ_UINT32>(reduce);
    if (!opj_setup_decoder(codec, &p)) return false;
    if (threads > 1) opj_codec_set_threads(codec, threads);
    return opj_read_header(stream, codec, &image) && image;
  }
};

bool is_j2k(const uint8_t* d, size_t n) { return n >= 4 && d[0] == 0xFF && d[1] == 0x4F && d[2] == 0xFF && d[3] == 0x51; }

}  // namespace

bool j2k_reduced_available() { return true; }

bool j2k_probe(const uint8_t* data, size_t size, J2kImage* info) {
  if (!is_j2k(data, size)) return false;
  Session s(data, size);
  if (!s.open(0, 1) || s.image->numcomps != 1) return false;
  opj_codestream_info_v2_t* ci = opj_get_cstr_info(s.codec);
  if (!ci) return false;
  info->levels = static_cast<int>(ci->m_default_tile_info.tccp_info ? ci->m_default_tile_info.tccp_info[0].numresolutions : 0);
  opj_destroy_cstr_info(&ci);
  info->full_width = static_cast<int>(s.image->x1 - s.image->x0);
  info->full_height = static_cast<int>(s.image->y1 - s.image->y0);
  info->precision = static_cast<int>(s.image->comps[0].prec);
  info->is_signed = s.image->comps[0].sgnd != 0;
  return true;
}

bool j2k_decode_reduced(const uint8_t* data, size_t size, int reduce, J2kImage* out, int threads) {
  if (!is_j2k(data, size) || reduce < 0) return false;
  J2kImage probe;
  if (!j2k_probe(data, size, &probe) || reduce >= probe.levels) return false;
  Session s(data, size);
  if (!s.open(reduce, threads) || s.image->numcomps != 1) return false;
  if (!opj_decode(s.codec, s.stream, s.image) || !opj_end_decompress(s.codec, s.stream)) return false;
  const opj_image_comp_t& c = s.image->comps[0];
  if (!c.data || c.w == 0 || c.h == 0) return false;
  *out = probe;
  out->width = static_cast<int>(c.w);
  out->height = static_cast<int>(c.h);
  out->values.assign(c.data, c.data + static_cast<size_t>(c.w) * c.h);
  return true;
}

#else

bool j2k_reduced_available() { return false; }
bool j2k_probe(const uint8_t*, size_t, J2kImage*) { return false; }
bool j2k_decode_reduced(const uint8_t*, size_t, int, J2kImage*, int) { return false; }

#endif

}  // namespace sx::io
