/*
 * queue.c: the waiting downloads' pairing heap (queue.h).
 */
#include "queue.h"

#include <stddef.h>

static int before(const qnode *a, const qnode *b) {
  return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
}

/* Links two heap roots; returns the new root. */
static qnode *link(qnode *a, qnode *b) {
  if (!a) return b;
  if (!b) return a;
  if (before(b, a)) {
    qnode *t = a;
    a = b;
    b = t;
  }
  b->next = a->child;
  if (a->child) a->child->prev = b;
  b->prev = a;
  a->child = b;
  a->prev = a->next = NULL;
  return a;
}

/* The two-pass pairing of a sibling list into one heap (iterative: no
 * recursion however long the list). */
static qnode *pairs(qnode *first) {
  qnode *merged = NULL;
  while (first) {
    qnode *a = first, *b = a->next;
    first = b ? b->next : NULL;
    a->prev = a->next = NULL;
    if (b) b->prev = b->next = NULL;
    qnode *m = link(a, b);
    m->next = merged;
    merged = m;
  }
  qnode *root = NULL;
  while (merged) {
    qnode *n = merged->next;
    merged->next = NULL;
    root = link(root, merged);
    merged = n;
  }
  return root;
}

void queue_insert(queue *q, qnode *x) {
  x->child = x->prev = x->next = NULL;
  q->root = link(q->root, x);
  q->n++;
}

void queue_push(queue *q, qnode *x) {
  x->seq = ++q->back;
  queue_insert(q, x);
}

void queue_push_front(queue *q, qnode *x) {
  x->seq = --q->front;
  queue_insert(q, x);
}

void queue_remove(queue *q, qnode *x) {
  if (x == q->root) {
    q->root = pairs(x->child);
  } else {
    if (x->prev->child == x) x->prev->child = x->next;
    else x->prev->next = x->next;
    if (x->next) x->next->prev = x->prev;
    q->root = link(q->root, pairs(x->child));
  }
  x->child = x->prev = x->next = NULL;
  q->n--;
}
