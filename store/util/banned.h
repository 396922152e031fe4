/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Functions that are easy to misuse become compile errors (git banned.h).
 *
 * meson.build force-includes this header (-include) ahead of every C file of
 * the project, so no file can miss it. It first includes the system headers
 * that declare the banned functions: their declarations (and glibc's inline and
 * fortified versions) are then compiled before the names are poisoned, and a
 * later #include of them is a no-op behind their include guards. */
#ifndef CAIRN_BANNED_H
#define CAIRN_BANNED_H

#include <stdio.h>  /* sprintf vsprintf */
#include <stdlib.h> /* atoi */
#include <string.h> /* strcpy strcat strncpy strtok */
#include <time.h>   /* gmtime localtime ctime */

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)
#undef ctime
#define ctime(t) BANNED(ctime)
#undef atoi
#define atoi(s) BANNED(atoi)

#endif
