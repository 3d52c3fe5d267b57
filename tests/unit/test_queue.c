/* src/queue.c: the waiting queue, checked against a plain model over generated operations
 * (push at either end, put back, remove any, take the first) and on a few fixed cases. */
#include "../../src/queue.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

enum { N = 200 };

/* The model: which nodes are in, and the first by (higher priority, smaller seq). */
static qnode *model_first(qnode *nodes, const int *in) {
  qnode *best = NULL;
  for (int i = 0; i < N; i++) {
    if (!in[i]) continue;
    qnode *x = &nodes[i];
    if (!best || x->priority > best->priority || (x->priority == best->priority && x->seq < best->seq)) best = x;
  }
  return best;
}

static unsigned rnd_state = 12345;
static unsigned rnd(void) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (rnd_state >> 8) & 0xffffff;
}

static void test_generated(void) {
  static qnode nodes[N];
  static int in[N];
  queue q = {0};
  memset(nodes, 0, sizeof nodes);
  memset(in, 0, sizeof in);
  int mismatches = 0, count_errors = 0;
  long ops = 0, inside = 0;
  for (int round = 0; round < 20000; round++) {
    int i = (int)(rnd() % N), op = (int)(rnd() % 5);
    qnode *x = &nodes[i];
    if (!in[i] && op <= 2) {
      x->priority = (long)(rnd() % 5) - 2;
      /* put back with the seq it had (a paused transfer); every seq is given out once, as
       * in the engine, so no two nodes tie */
      if (op == 2 && x->seq != 0) queue_insert(&q, x);
      else if (op == 1) queue_push_front(&q, x);
      else queue_push(&q, x);
      in[i] = 1;
      inside++;
    } else if (in[i] && op == 3) {
      queue_remove(&q, x);
      in[i] = 0;
      inside--;
    } else if (op == 4 && q.root) { /* the engine starts the first */
      qnode *first = q.root;
      queue_remove(&q, first);
      in[first - nodes] = 0;
      inside--;
    }
    ops++;
    if (q.root != model_first(nodes, in)) mismatches++;
    if (q.n != inside) count_errors++;
  }
  CHECK(mismatches == 0, "the first node differs from the model's after %d of %ld operations", mismatches, ops);
  CHECK(count_errors == 0, "the count differs from the model's %d times", count_errors);
  /* emptied in order: priorities never rise, seqs rise within one */
  int ordered = 1;
  long last_p = 0;
  int64_t last_s = 0;
  for (int k = 0; q.root; k++) {
    qnode *f = q.root;
    if (k > 0 && (f->priority > last_p || (f->priority == last_p && f->seq < last_s))) ordered = 0;
    last_p = f->priority;
    last_s = f->seq;
    queue_remove(&q, f);
  }
  CHECK(ordered && q.n == 0, "drained in priority, then call order");
}

static void test_fixed(void) {
  qnode a = {0}, b = {0}, c = {0}, d = {0};
  queue q = {0};
  a.priority = b.priority = c.priority = 0;
  d.priority = 5;
  queue_push(&q, &a);
  queue_push(&q, &b);
  queue_push_front(&q, &c);
  CHECK(q.root == &c, "push_front goes before the others of its priority");
  queue_push(&q, &d);
  CHECK(q.root == &d, "a higher priority first");
  queue_remove(&q, &d);
  queue_remove(&q, &c);
  CHECK(q.root == &a && q.n == 2, "then call order");
  queue_remove(&q, &b); /* a node in the middle */
  CHECK(q.root == &a && q.n == 1, "removing another leaves the first");
  int64_t kept = a.seq;
  queue_remove(&q, &a);
  queue_push(&q, &b);
  queue_insert(&q, &a); /* paused and resumed: back in its place, before b */
  CHECK(q.root == &a && a.seq == kept, "a node put back keeps its place");
  static qnode many[100000];
  queue big = {0};
  for (int i = 0; i < 100000; i++) queue_push(&big, &many[i]);
  queue_remove(&big, &many[0]); /* the pairing of 99,999 siblings: no recursion */
  CHECK(big.root == &many[1] && big.n == 99999, "a long sibling list is paired without recursion");
}

void test_queue(void) {
  test_generated();
  test_fixed();
}
