/* image_jobs.h - the background jobs on an image of the set (prefix
 * ijob_), run by the set's worker (background.h) with the set as their
 * owner, so iset_destroy cancels them: comparing a file's captured blocks
 * with the source when its freshness record asks for it (freshness.h),
 * checking every block of a loaded image once, and priming the image's
 * namespace answers (namespace.h).  Internal to the image set
 * (imageset_i.h); a job that cannot be queued (out of memory) is skipped:
 * a file is judged again at its next open, a block checked at first use,
 * an answer asked of the source. */
#ifndef YOLO_IMAGE_JOBS_H
#define YOLO_IMAGE_JOBS_H

#include <stdint.h>

#include "freshness.h"

struct image;
struct bst_view;

/* Judge every file of a newly opened image against the source as it is:
 * files touched while no daemon ran are compared at once, in the
 * background, so their first boot finds them accepted if it can. */
void ijob_judge_files(struct image *im);

/* Queue a comparison of file `id` of `im` with the source. */
void ijob_queue_compare(struct image *im, uint32_t id);

/* Tell what the judgement of file `id` found (`act`), once per change of
 * status. */
void ijob_report_judgement(struct image *im, uint32_t id, enum fr_action act);

/* Queue a check of every block of `im`, loaded as `mem` (a view reference
 * is taken for the job). */
void ijob_queue_verify(struct image *im, struct bst_view *mem);

/* Queue the priming of `im`'s namespace answers, if the set answers
 * namespace questions and the image records some. */
void ijob_queue_prime(struct image *im);

#endif /* YOLO_IMAGE_JOBS_H */
