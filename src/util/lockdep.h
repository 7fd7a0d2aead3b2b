/* SPDX-License-Identifier: MIT */
/*
 * DOC: Lock assertions
 *
 * The kernel's lockdep_assert_held(), reduced to what usvm needs: in builds
 * with USVM_LOCKDEP (the sanitizer builds, or -DUSVM_LOCKDEP=ON), every lock
 * taken through these wrappers is recorded in a small per-thread set, and
 * usvm_assert_held() aborts with file and line when the calling thread does
 * not hold the lock a function documents as required.  Taking a lock the
 * thread already holds (a self-deadlock, e.g. two blocks whose striped locks
 * collide) aborts too.  Without USVM_LOCKDEP the wrappers are the plain
 * pthread calls.
 */
#ifndef USVM_LOCKDEP_H
#define USVM_LOCKDEP_H

#include <pthread.h>

#ifdef USVM_LOCKDEP
void _usvm_lockdep_acquire(const void *lock, const char *file, int line);
void _usvm_lockdep_release(const void *lock, const char *file, int line);
void _usvm_lockdep_assert_held(const void *lock, const char *what, const char *file, int line);
void _usvm_lockdep_assert_none(const char *file, int line);
#define usvm_lockdep_acquire(l) _usvm_lockdep_acquire((l), __FILE__, __LINE__)
#define usvm_lockdep_release(l) _usvm_lockdep_release((l), __FILE__, __LINE__)
#define usvm_assert_held(l) _usvm_lockdep_assert_held((l), #l, __FILE__, __LINE__)
/* The caller holds no tracked lock (before waiting for the fault threads). */
#define usvm_assert_no_locks() _usvm_lockdep_assert_none(__FILE__, __LINE__)
#else
#define usvm_lockdep_acquire(l) ((void)(l))
#define usvm_lockdep_release(l) ((void)(l))
#define usvm_assert_held(l) ((void)(l))
#define usvm_assert_no_locks() ((void)0)
#endif

#define usvm_mutex_lock(m)                        \
	do {                                      \
		pthread_mutex_t *_m = (m);        \
		pthread_mutex_lock(_m);           \
		usvm_lockdep_acquire(_m);         \
	} while (0)
#define usvm_mutex_unlock(m)                      \
	do {                                      \
		pthread_mutex_t *_m = (m);        \
		usvm_lockdep_release(_m);         \
		pthread_mutex_unlock(_m);         \
	} while (0)
#define usvm_rwlock_rdlock(l)                     \
	do {                                      \
		pthread_rwlock_t *_l = (l);       \
		pthread_rwlock_rdlock(_l);        \
		usvm_lockdep_acquire(_l);         \
	} while (0)
#define usvm_rwlock_wrlock(l)                     \
	do {                                      \
		pthread_rwlock_t *_l = (l);       \
		pthread_rwlock_wrlock(_l);        \
		usvm_lockdep_acquire(_l);         \
	} while (0)
/* Non-blocking variants: non-zero when the lock was taken. */
#define usvm_mutex_trylock(m)                                     \
	({                                                        \
		pthread_mutex_t *_m = (m);                        \
		int _ok = !pthread_mutex_trylock(_m);             \
		if (_ok)                                          \
			usvm_lockdep_acquire(_m);                 \
		_ok;                                              \
	})
#define usvm_rwlock_tryrdlock(l)                                  \
	({                                                        \
		pthread_rwlock_t *_l = (l);                       \
		int _ok = !pthread_rwlock_tryrdlock(_l);          \
		if (_ok)                                          \
			usvm_lockdep_acquire(_l);                 \
		_ok;                                              \
	})
#define usvm_rwlock_unlock(l)                     \
	do {                                      \
		pthread_rwlock_t *_l = (l);       \
		usvm_lockdep_release(_l);         \
		pthread_rwlock_unlock(_l);        \
	} while (0)

#endif
