/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Fault injection for the programs linked with thread-fault.c: their pthread_create() (the
 * modules under test included) fails with EAGAIN once thread_fault_budget more threads have
 * been created. -1 (the start value): it never fails. Main thread only. */

extern int thread_fault_budget;
