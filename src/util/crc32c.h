/*
 * CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of
 * checkpoint files and manifests (the same one RocksDB, ext4 and iSCSI use).
 *
 * Values are "finished" CRCs (initial value and final XOR 0xFFFFFFFF applied), so
 * crc32c("123456789") = 0xE3069283. fl_crc32c_extend() continues a finished value:
 *   fl_crc32c_extend(fl_crc32c(a, n), b, m) == fl_crc32c(a ++ b, n + m),
 * and fl_crc32c_extend(0, p, n) == fl_crc32c(p, n).
 *
 * fl_crc32c_extend() uses the SSE4.2 crc32 instruction when the CPU has it (decided once,
 * at the first call) and a slicing-by-8 table walk otherwise. Both paths are exposed so
 * that tests can check each against known vectors.
 *
 * Threading: every function may be called from any thread.
 */
#ifndef FL_UTIL_CRC32C_H
#define FL_UTIL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t fl_crc32c_extend(uint32_t crc, const void *data, size_t len);

static inline uint32_t fl_crc32c(const void *data, size_t len) {
  return fl_crc32c_extend(0, data, len);
}

/* The software path (slicing-by-8; about 1 byte per cycle). */
uint32_t fl_crc32c_sw_extend(uint32_t crc, const void *data, size_t len);

/* Whether the hardware path can run on this CPU. */
bool fl_crc32c_hw_available(void);

/* The hardware path. Only call it when fl_crc32c_hw_available() is true. */
uint32_t fl_crc32c_hw_extend(uint32_t crc, const void *data, size_t len);

#endif
