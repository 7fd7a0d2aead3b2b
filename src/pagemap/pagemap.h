/* SPDX-License-Identifier: MIT */
/*
 * The pagemap layer inside usvm: the public backend interface
 * (include/usvm/backend.h) plus what the core keeps per pagemap
 * (struct usvm_pagemap_core, src/migrate/migrate.h).
 */
#ifndef USVM_PAGEMAP_H
#define USVM_PAGEMAP_H

#include <usvm/backend.h>
#include "migrate/migrate.h"

/* ---- headroom (headroom.c) ------------------------------------------------ */

/* Read USVM_HEADROOM for a new pagemap. */
void pagemap_headroom_init(struct usvm_pagemap *pm);
/* A populate took memory: evict ahead if the headroom is short. */
void pagemap_headroom_kick(struct usvm_pagemap *pm);
/* The last put: stop evicting ahead. */
void pagemap_headroom_stop(struct usvm_pagemap *pm);

#endif
