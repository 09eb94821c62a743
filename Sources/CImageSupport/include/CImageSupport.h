#ifndef DISTILL_CIMAGESUPPORT_H
#define DISTILL_CIMAGESUPPORT_H

/*
 * Thin C wrappers over libpng and libjpeg for Distillery's ImageIO.
 *
 * Both libraries report errors by longjmp. Swift cannot call setjmp, and a longjmp across
 * Swift frames is undefined behaviour, so every setjmp/longjmp lives here: each function
 * either succeeds or returns a nonzero status with a message in `errbuf`, having freed
 * everything it allocated.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by the functions below. */
enum {
  DISTILL_IMAGE_OK = 0,
  /* The file could not be opened, read or written (errno-level failure). */
  DISTILL_IMAGE_IO_ERROR = 1,
  /* The content is corrupt, truncated or unsupported. */
  DISTILL_IMAGE_MALFORMED = 2,
};

/* The largest width or height accepted when reading. */
#define DISTILL_IMAGE_MAX_SIDE 16384u
/* The most pixels (width x height) accepted when reading: 2^26, e.g. 8192 x 8192. Checked
   from the header, before any pixel memory is allocated; the float tensor of such an image
   is up to 1 GiB (4 channels). */
#define DISTILL_IMAGE_MAX_PIXELS 67108864u

/*
 * A decoded image: interleaved samples, row-major, `channels` per pixel (1 gray, 2 gray+alpha,
 * 3 RGB, 4 RGBA). With bit_depth 8 each sample is one byte; with bit_depth 16 each sample is
 * two bytes, most significant first (PNG order), whatever the host's byte order.
 * `pixels` is malloc'd; release it with distill_image_free.
 */
typedef struct {
  uint32_t width;
  uint32_t height;
  uint32_t channels;
  uint32_t bit_depth;
  unsigned char *pixels;
} distill_image;

void distill_image_free(distill_image *image);

/* Reads a PNG of any colour type and bit depth; palette, tRNS and low bit depths are
   expanded, 16-bit samples are kept at 16 bits. */
int distill_png_read(const char *path, distill_image *out, char *errbuf, size_t errlen);

/* Reads a grayscale or YCbCr/RGB JPEG as 8-bit gray or RGB; CMYK and YCCK are refused.
   libjpeg warnings (corrupt data, premature end of file) are errors. */
int distill_jpeg_read(const char *path, distill_image *out, char *errbuf, size_t errlen);

/* Writes `pixels` (laid out as in distill_image) as a PNG at `path`, flushed and synced.
   channels 1...4, bit_depth 8 or 16. */
int distill_png_write(const char *path, const unsigned char *pixels, uint32_t width, uint32_t height,
                      uint32_t channels, uint32_t bit_depth, char *errbuf, size_t errlen);

/* Encodes a PNG like distill_png_write into a buffer the caller frees with free(). */
int distill_png_encode(const unsigned char *pixels, uint32_t width, uint32_t height, uint32_t channels,
                       uint32_t bit_depth, unsigned char **out, size_t *out_length, char *errbuf, size_t errlen);

/* Writes 8-bit `pixels` (channels 1 or 3) as a baseline JPEG with 4:4:4 chroma at `path`,
   flushed and synced. quality 1...100. */
int distill_jpeg_write(const char *path, const unsigned char *pixels, uint32_t width, uint32_t height,
                       uint32_t channels, int quality, char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

/* Reads a whole file, gunzipping it when it is gzip (plain files are read as they are); the
   caller frees *out with free(). */
int distill_read_maybe_gzip(const char *path, unsigned char **out, size_t *out_length, char *errbuf, size_t errlen);

#endif
