#include <stdbool.h>
#include <stddef.h>
struct pattern_list;
int pattern_list_new(struct pattern_list **out);
void pattern_list_free(struct pattern_list *l);
int pattern_list_add(struct pattern_list *l, const char *pat);
int pattern_list_add_file(struct pattern_list *l, const char *path);
bool pattern_list_match(const struct pattern_list *l, const char *path, size_t len);
