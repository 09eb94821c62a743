#include "CImageSupport.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <zlib.h>
#include <jerror.h>
#include <png.h>

static void set_message(char *buf, size_t len, const char *format, ...) {
  if (buf == NULL || len == 0) return;
  va_list args;
  va_start(args, format);
  vsnprintf(buf, len, format, args);
  va_end(args);
}

/* fopen(path, mode); when it fails, errbuf says why ("cannot open" to read, "cannot create"
   to write) and NULL is returned. */
static FILE *open_file(const char *path, const char *mode, char *errbuf, size_t errlen) {
  FILE *fp = fopen(path, mode);
  const char *verb = mode[0] == 'r' ? "cannot open" : "cannot create";
  if (fp == NULL) set_message(errbuf, errlen, "%s: %s", verb, strerror(errno));
  return fp;
}

void distill_image_free(distill_image *image) {
  if (image == NULL) return;
  free(image->pixels);
  image->pixels = NULL;
}

/* Checks the dimensions of an image about to be decoded and returns its size in bytes, or 0
   (with a message) when a side is zero or too large or the size overflows. */
static size_t checked_image_bytes(uint32_t width, uint32_t height, uint32_t channels, uint32_t bit_depth,
                                  char *errbuf, size_t errlen) {
  if (width == 0 || height == 0) {
    set_message(errbuf, errlen, "image has zero size (%ux%u)", width, height);
    return 0;
  }
  if (width > DISTILL_IMAGE_MAX_SIDE || height > DISTILL_IMAGE_MAX_SIDE) {
    set_message(errbuf, errlen, "image of %ux%u pixels exceeds the limit of %u per side", width, height,
                DISTILL_IMAGE_MAX_SIDE);
    return 0;
  }
  if ((uint64_t)width * height > DISTILL_IMAGE_MAX_PIXELS) {
    set_message(errbuf, errlen, "image of %ux%u pixels exceeds the limit of %u pixels", width, height,
                DISTILL_IMAGE_MAX_PIXELS);
    return 0;
  }
  size_t row = (size_t)width * channels * (bit_depth / 8);
  if (row == 0 || (size_t)height > SIZE_MAX / row) {
    set_message(errbuf, errlen, "image of %ux%u pixels is too large", width, height);
    return 0;
  }
  return row * height;
}

/* Flushes, syncs and closes `fp`; returns DISTILL_IMAGE_OK or DISTILL_IMAGE_IO_ERROR. */
static int finish_file(FILE *fp, char *errbuf, size_t errlen) {
  int failed = fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0;
  int saved = errno;
  if (fclose(fp) != 0 && !failed) {
    failed = 1;
    saved = errno;
  }
  if (failed) {
    set_message(errbuf, errlen, "cannot write: %s", strerror(saved));
    return DISTILL_IMAGE_IO_ERROR;
  }
  return DISTILL_IMAGE_OK;
}

/* MARK: PNG */

typedef struct {
  char *buf;
  size_t len;
  char warning[160]; /* the latest warning, often the reason for the error that follows */
} message_sink;

static void png_error_handler(png_structp png, png_const_charp message) {
  message_sink *sink = (message_sink *)png_get_error_ptr(png);
  if (sink->warning[0] != '\0') {
    set_message(sink->buf, sink->len, "%s (after warning: %s)", message, sink->warning);
  } else {
    set_message(sink->buf, sink->len, "%s", message);
  }
  png_longjmp(png, 1);
}

static void png_warning_handler(png_structp png, png_const_charp message) {
  /* Warnings (unknown or damaged ancillary chunks, odd ICC profiles) do not affect pixels;
     the latest is kept to explain an error, such as a size over the user limits. */
  message_sink *sink = (message_sink *)png_get_error_ptr(png);
  set_message(sink->warning, sizeof sink->warning, "%s", message);
}

int distill_png_read(const char *path, distill_image *out, char *errbuf, size_t errlen) {
  memset(out, 0, sizeof *out);
  FILE *fp = open_file(path, "rb", errbuf, errlen);
  if (fp == NULL) return DISTILL_IMAGE_IO_ERROR;
  unsigned char signature[8];
  size_t got = fread(signature, 1, sizeof signature, fp);
  if (got != sizeof signature || png_sig_cmp(signature, 0, sizeof signature) != 0) {
    int io = ferror(fp);
    fclose(fp);
    set_message(errbuf, errlen, io ? "cannot read" : "not a PNG file");
    return io ? DISTILL_IMAGE_IO_ERROR : DISTILL_IMAGE_MALFORMED;
  }

  message_sink sink = {errbuf, errlen, {0}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_handler, png_warning_handler);
  png_infop info = png == NULL ? NULL : png_create_info_struct(png);
  if (info == NULL) {
    png_destroy_read_struct(&png, NULL, NULL);
    fclose(fp);
    set_message(errbuf, errlen, "out of memory");
    return DISTILL_IMAGE_IO_ERROR;
  }

  /* Modified after setjmp, so volatile: their values must survive the longjmp. */
  unsigned char *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    free(pixels);
    fclose(fp);
    return DISTILL_IMAGE_MALFORMED;
  }

  png_init_io(png, fp);
  png_set_sig_bytes(png, sizeof signature);
  png_set_user_limits(png, DISTILL_IMAGE_MAX_SIDE, DISTILL_IMAGE_MAX_SIDE);
  png_read_info(png, info);

  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
  /* Palette to RGB, gray below 8 bits to 8 bits, tRNS to an alpha channel; 16 bits stay 16. */
  png_set_expand(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  uint32_t channels = png_get_channels(png, info);
  uint32_t depth = png_get_bit_depth(png, info);
  if ((depth != 8 && depth != 16) || channels < 1 || channels > 4) {
    png_error(png, "unexpected layout after expansion");
  }
  size_t bytes = checked_image_bytes(width, height, channels, depth, errbuf, errlen);
  if (bytes == 0) png_longjmp(png, 1);
  size_t row_bytes = (size_t)width * channels * (depth / 8);
  if (png_get_rowbytes(png, info) != row_bytes) png_error(png, "unexpected row size after expansion");

  pixels = malloc(bytes);
  rows = malloc(sizeof(png_bytep) * height);
  if (pixels == NULL || rows == NULL) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * row_bytes;
  png_read_image(png, rows);
  png_read_end(png, NULL);

  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  fclose(fp);
  out->width = width;
  out->height = height;
  out->channels = channels;
  out->bit_depth = depth;
  out->pixels = pixels;
  return DISTILL_IMAGE_OK;
}

/* Writes a PNG of `pixels` to `fp`, which stays open. */
static int write_png_stream(FILE *fp, const unsigned char *pixels, uint32_t width, uint32_t height, uint32_t channels,
                            uint32_t bit_depth, char *errbuf, size_t errlen) {
  static const int color_types[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                    PNG_COLOR_TYPE_RGB_ALPHA};
  if (channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16) || width == 0 || height == 0) {
    set_message(errbuf, errlen, "unsupported PNG layout: %ux%u, %u channels, %u bits", width, height, channels,
                bit_depth);
    return DISTILL_IMAGE_MALFORMED;
  }
  size_t row_bytes = (size_t)width * channels * (bit_depth / 8);
  png_bytep *rows = malloc(sizeof(png_bytep) * height);
  message_sink sink = {errbuf, errlen, {0}};
  png_structp png =
      rows == NULL ? NULL : png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_handler, png_warning_handler);
  png_infop info = png == NULL ? NULL : png_create_info_struct(png);
  if (info == NULL) {
    png_destroy_write_struct(&png, NULL);
    free(rows);
    set_message(errbuf, errlen, "out of memory");
    return DISTILL_IMAGE_IO_ERROR;
  }
  for (uint32_t y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * row_bytes);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(rows);
    return DISTILL_IMAGE_IO_ERROR;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, width, height, (int)bit_depth, color_types[channels - 1], PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  return 0;
}

int distill_png_write(const char *path, const unsigned char *pixels, uint32_t width, uint32_t height,
                      uint32_t channels, uint32_t bit_depth, char *errbuf, size_t errlen) {
  FILE *fp = open_file(path, "wb", errbuf, errlen);
  if (fp == NULL) return DISTILL_IMAGE_IO_ERROR;
  int result = write_png_stream(fp, pixels, width, height, channels, bit_depth, errbuf, errlen);
  if (result != 0) {
    fclose(fp);
    return result;
  }
  return finish_file(fp, errbuf, errlen);
}

int distill_png_encode(const unsigned char *pixels, uint32_t width, uint32_t height, uint32_t channels,
                       uint32_t bit_depth, unsigned char **out, size_t *out_length, char *errbuf, size_t errlen) {
  char *buffer = NULL;
  size_t length = 0;
  FILE *fp = open_memstream(&buffer, &length);
  if (fp == NULL) {
    set_message(errbuf, errlen, "out of memory");
    return DISTILL_IMAGE_IO_ERROR;
  }
  int result = write_png_stream(fp, pixels, width, height, channels, bit_depth, errbuf, errlen);
  if (fclose(fp) != 0 && result == 0) {
    set_message(errbuf, errlen, "out of memory");
    result = DISTILL_IMAGE_IO_ERROR;
  }
  if (result != 0) {
    free(buffer);
    return result;
  }
  *out = (unsigned char *)buffer;
  *out_length = length;
  return 0;
}

/* MARK: JPEG */

typedef struct {
  struct jpeg_error_mgr manager;
  jmp_buf jump;
  char *buf;
  size_t len;
} jpeg_error_context;

static void jpeg_error_exit_handler(j_common_ptr cinfo) {
  jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
  char message[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, message);
  set_message(context->buf, context->len, "%s", message);
  longjmp(context->jump, 1);
}

/* libjpeg's standard error manager in `error`, whose fatal errors longjmp to error->jump with
   the message in errbuf. */
static struct jpeg_error_mgr *jpeg_error_setup(jpeg_error_context *error, char *errbuf, size_t errlen) {
  struct jpeg_error_mgr *manager = jpeg_std_error(&error->manager);
  error->manager.error_exit = jpeg_error_exit_handler;
  error->buf = errbuf;
  error->len = errlen;
  return manager;
}

static void jpeg_emit_message_handler(j_common_ptr cinfo, int level) {
  if (level >= 0) return; /* trace messages */
  int code = cinfo->err->msg_code;
  /* Harmless header oddities; every other warning means corrupt or truncated data. */
  if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM) return;
  jpeg_error_exit_handler(cinfo);
}

int distill_jpeg_read(const char *path, distill_image *out, char *errbuf, size_t errlen) {
  memset(out, 0, sizeof *out);
  FILE *fp = open_file(path, "rb", errbuf, errlen);
  if (fp == NULL) return DISTILL_IMAGE_IO_ERROR;
  struct jpeg_decompress_struct cinfo;
  jpeg_error_context error;
  cinfo.err = jpeg_error_setup(&error, errbuf, errlen);
  error.manager.emit_message = jpeg_emit_message_handler;

  unsigned char *volatile pixels = NULL;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&cinfo);
    free(pixels);
    fclose(fp);
    return DISTILL_IMAGE_MALFORMED;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, fp);
  jpeg_read_header(&cinfo, TRUE);

  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    set_message(errbuf, errlen, "CMYK JPEG is not supported");
    longjmp(error.jump, 1);
  }
  int gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  uint32_t channels = gray ? 1 : 3;
  size_t bytes = checked_image_bytes(cinfo.image_width, cinfo.image_height, channels, 8, errbuf, errlen);
  if (bytes == 0) longjmp(error.jump, 1);

  jpeg_start_decompress(&cinfo);
  if ((uint32_t)cinfo.output_components != channels || cinfo.output_width != cinfo.image_width ||
      cinfo.output_height != cinfo.image_height) {
    set_message(errbuf, errlen, "unexpected JPEG output layout");
    longjmp(error.jump, 1);
  }
  pixels = malloc(bytes);
  if (pixels == NULL) {
    set_message(errbuf, errlen, "out of memory");
    longjmp(error.jump, 1);
  }
  size_t row_bytes = (size_t)cinfo.output_width * channels;
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels + (size_t)cinfo.output_scanline * row_bytes;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      set_message(errbuf, errlen, "Premature end of JPEG file");
      longjmp(error.jump, 1);
    }
  }
  jpeg_finish_decompress(&cinfo);

  out->width = cinfo.output_width;
  out->height = cinfo.output_height;
  out->channels = channels;
  out->bit_depth = 8;
  out->pixels = pixels;
  jpeg_destroy_decompress(&cinfo);
  fclose(fp);
  return DISTILL_IMAGE_OK;
}

int distill_jpeg_write(const char *path, const unsigned char *pixels, uint32_t width, uint32_t height,
                       uint32_t channels, int quality, char *errbuf, size_t errlen) {
  if ((channels != 1 && channels != 3) || width == 0 || height == 0 || width > JPEG_MAX_DIMENSION ||
      height > JPEG_MAX_DIMENSION || quality < 1 || quality > 100) {
    set_message(errbuf, errlen, "unsupported JPEG layout: %ux%u, %u channels, quality %d", width, height, channels,
                quality);
    return DISTILL_IMAGE_MALFORMED;
  }
  FILE *fp = open_file(path, "wb", errbuf, errlen);
  if (fp == NULL) return DISTILL_IMAGE_IO_ERROR;
  struct jpeg_compress_struct cinfo;
  jpeg_error_context error;
  cinfo.err = jpeg_error_setup(&error, errbuf, errlen);
  if (setjmp(error.jump)) {
    jpeg_destroy_compress(&cinfo);
    fclose(fp);
    return DISTILL_IMAGE_IO_ERROR;
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, fp);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = (int)channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  for (int i = 0; i < cinfo.num_components; i++) {
    cinfo.comp_info[i].h_samp_factor = 1; /* 4:4:4, no chroma subsampling */
    cinfo.comp_info[i].v_samp_factor = 1;
  }
  jpeg_start_compress(&cinfo, TRUE);
  size_t row_bytes = (size_t)width * channels;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * row_bytes);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return finish_file(fp, errbuf, errlen);
}

/* MARK: Whole files, gzip or plain */

int distill_read_maybe_gzip(const char *path, unsigned char **out, size_t *out_length, char *errbuf, size_t errlen) {
  gzFile file = gzopen(path, "rb");
  if (file == NULL) {
    set_message(errbuf, errlen, "cannot open: %s", strerror(errno));
    return DISTILL_IMAGE_IO_ERROR;
  }
  size_t capacity = 1 << 20, length = 0;
  unsigned char *buffer = malloc(capacity);
  for (;;) {
    if (buffer == NULL) {
      gzclose(file);
      set_message(errbuf, errlen, "out of memory");
      return DISTILL_IMAGE_IO_ERROR;
    }
    int n = gzread(file, buffer + length, (unsigned)(capacity - length));
    if (n < 0) {
      int code = 0;
      const char *message = gzerror(file, &code);
      set_message(errbuf, errlen, "cannot read: %s", code == Z_ERRNO ? strerror(errno) : message);
      free(buffer);
      gzclose(file);
      return DISTILL_IMAGE_MALFORMED;
    }
    if (n == 0) break;
    length += (size_t)n;
    if (length == capacity) {
      capacity *= 2;
      unsigned char *grown = realloc(buffer, capacity);
      if (grown == NULL) free(buffer);
      buffer = grown;
    }
  }
  gzclose(file);
  *out = buffer;
  *out_length = length;
  return 0;
}
