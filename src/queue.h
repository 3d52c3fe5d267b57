/*
 * queue.h: the queue of downloads waiting to start, higher priority first and, among equal
 * priorities, in call order (a download put back keeps its place). A pairing heap of nodes
 * embedded in what is queued; no allocation. Pure: no libcurl, no I/O. Unit-tested in
 * tests/unit/test_queue.c.
 */
#ifndef DT_QUEUE_H
#define DT_QUEUE_H

#include <stdint.h>

typedef struct qnode {
  struct qnode *prev, *next; /* siblings (prev: the left one, or the parent) */
  struct qnode *child;       /* the first child */
  long priority;             /* set before queueing */
  int64_t seq;               /* order among equal priorities: smaller first (queue_push sets it) */
} qnode;

typedef struct queue {
  qnode *root; /* the first to start, or NULL */
  long n;
  int64_t front, back; /* the seqs given out at either end so far */
} queue;

/* After the nodes of its priority queued so far. */
void queue_push(queue *q, qnode *x);
/* Before the nodes of its priority queued so far. */
void queue_push_front(queue *q, qnode *x);
/* With the seq it has (a node put back keeps its place). */
void queue_insert(queue *q, qnode *x);
/* x, which is in q, leaves it. */
void queue_remove(queue *q, qnode *x);

#endif
