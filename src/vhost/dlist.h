/* An intrusive doubly-linked list with a sentinel head; nodes that are on
 * no list have NULL links, so removal is idempotent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct dlist {
        struct dlist *prev, *next;
};

static inline void dlist_init(struct dlist *head) { head->prev = head->next = head; }
static inline bool dlist_empty(const struct dlist *head) { return head->next == head; }
static inline bool dlist_linked(const struct dlist *n) { return n->next != NULL; }
static inline void dlist_append(struct dlist *head, struct dlist *n) {
        n->prev = head->prev;
        n->next = head;
        head->prev->next = n;
        head->prev = n;
}
static inline void dlist_remove(struct dlist *n) {
        if (!n->next)
                return;
        n->prev->next = n->next;
        n->next->prev = n->prev;
        n->prev = n->next = NULL;
}
