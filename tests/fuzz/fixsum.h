/* fixsum.h - for the fuzz targets: recompute an image's checksums in place,
 * so mutated inputs get past them to the field-by-field validation. */
#ifndef YOLO_FUZZ_FIXSUM_H
#define YOLO_FUZZ_FIXSUM_H

#include <stddef.h>
#include <stdint.h>

/* Recompute meta_checksum (when the sections lie within the input), the
 * checksum of each extension section and of the extension table, and
 * header_checksum in place, as a writer would have. */
void fix_checksums(uint8_t *b, size_t size);

#endif /* YOLO_FUZZ_FIXSUM_H */
