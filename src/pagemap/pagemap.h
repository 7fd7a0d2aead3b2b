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

#endif
