/* The signed-reading wire format v1, mirrored from docs/reading-format.md and gridtokenx/reading.py.
 *
 * A v1 reading is exactly 60 little-endian bytes. The Python module is the reference; the offsets here
 * are tested against tests/vectors/reading-v1.json through the programs that include this header.
 * Only what the chain needs is parsed: programs credit energy, so a reading must be canonical and must
 * not carry METER_ERROR. */
#ifndef GTX_READING_H
#define GTX_READING_H

#include <stdint.h>

#define GTX_READING_LEN 60
#define GTX_READING_VERSION 1

#define GTX_READING_OFF_MAGIC 0
#define GTX_READING_OFF_VERSION 4
#define GTX_READING_OFF_FLAGS 5
#define GTX_READING_OFF_RESERVED 6
#define GTX_READING_OFF_METER_ID 8
#define GTX_READING_METER_ID_LEN 16
#define GTX_READING_OFF_SEQ 24
#define GTX_READING_OFF_TIMESTAMP_MS 32
#define GTX_READING_OFF_IMPORT_WH 40
#define GTX_READING_OFF_EXPORT_WH 48
#define GTX_READING_OFF_POWER_W 56

#define GTX_READING_FLAG_CLOCK_MASK 0x03
#define GTX_READING_FLAG_METER_ERROR 0x04
#define GTX_READING_FLAG_POWER_PRESENT 0x08
#define GTX_READING_FLAG_KNOWN 0x0F

/* Parse results, in the order the checks run (the same order as the Python decoder). */
enum gtx_reading_status {
  GTX_READING_OK = 0,
  GTX_READING_BAD_LENGTH = 1,
  GTX_READING_BAD_PREFIX = 2,
  GTX_READING_BAD_VERSION = 3,
  GTX_READING_BAD_FLAGS = 4,
  GTX_READING_BAD_RESERVED = 5,
  GTX_READING_BAD_METER_ID = 6,
  GTX_READING_BAD_POWER = 7,
  GTX_READING_METER_ERROR = 8, /* well-formed, but flagged: never credit energy from it */
};

typedef struct {
  const uint8_t *meter_id; /* 16 bytes, NUL-padded, points into the reading */
  uint64_t seq;
  uint64_t timestamp_ms;
  uint64_t import_wh;
  uint64_t export_wh;
  uint8_t flags;
} gtx_reading_t;

static inline uint64_t gtx_reading_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static inline int gtx_reading_id_char_ok(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

/* Validates the 60 bytes exactly as the Python decoder does and fills `out`. */
static inline enum gtx_reading_status gtx_reading_parse(const uint8_t *data, uint64_t len, gtx_reading_t *out) {
  if (len < 5) return GTX_READING_BAD_LENGTH;
  if (data[0] != 'G' || data[1] != 'T' || data[2] != 'X' || data[3] != 'R') return GTX_READING_BAD_PREFIX;
  if (data[GTX_READING_OFF_VERSION] != GTX_READING_VERSION) return GTX_READING_BAD_VERSION;
  if (len != GTX_READING_LEN) return GTX_READING_BAD_LENGTH;
  uint8_t flags = data[GTX_READING_OFF_FLAGS];
  if ((flags & ~GTX_READING_FLAG_KNOWN) || (flags & GTX_READING_FLAG_CLOCK_MASK) == 3) return GTX_READING_BAD_FLAGS;
  if (data[GTX_READING_OFF_RESERVED] || data[GTX_READING_OFF_RESERVED + 1]) return GTX_READING_BAD_RESERVED;
  const uint8_t *id = data + GTX_READING_OFF_METER_ID;
  int end = 0;
  while (end < GTX_READING_METER_ID_LEN && id[end] != 0) {
    if (!gtx_reading_id_char_ok(id[end])) return GTX_READING_BAD_METER_ID;
    end++;
  }
  if (end == 0) return GTX_READING_BAD_METER_ID;
  for (int i = end; i < GTX_READING_METER_ID_LEN; i++)
    if (id[i] != 0) return GTX_READING_BAD_METER_ID;
  const uint8_t *pw = data + GTX_READING_OFF_POWER_W;
  if (!(flags & GTX_READING_FLAG_POWER_PRESENT) && (pw[0] | pw[1] | pw[2] | pw[3])) return GTX_READING_BAD_POWER;
  out->meter_id = id;
  out->seq = gtx_reading_u64(data + GTX_READING_OFF_SEQ);
  out->timestamp_ms = gtx_reading_u64(data + GTX_READING_OFF_TIMESTAMP_MS);
  out->import_wh = gtx_reading_u64(data + GTX_READING_OFF_IMPORT_WH);
  out->export_wh = gtx_reading_u64(data + GTX_READING_OFF_EXPORT_WH);
  out->flags = flags;
  if (flags & GTX_READING_FLAG_METER_ERROR) return GTX_READING_METER_ERROR;
  return GTX_READING_OK;
}

#endif
