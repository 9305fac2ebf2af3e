// Huge pages for the heap LLVM compiles in.
//
// A cold compile of the MLP 784-256-256-10 allocates some 12 MB of LLVM's
// data structures in fresh memory, on the two threads that compile its
// pieces: about 1,800 page faults of 4 KiB, on a guest where one costs 10-14
// us (bench/RESULTS.md, "A ninth session"), a fifth of the compile. glibc
// gives each thread but the first its own heap (an "arena": a 64 MiB
// reservation made readable and writable from its start as it grows), in
// small steps, so no 2 MiB of it is ever one mapping the kernel could back
// with a huge page. Two calls fix that:
//
// - use_huge_pages_for_compiling(), once, before the threads start: glibc's
//   top pad becomes 32 MiB (mallopt M_TOP_PAD), so a heap made after it is
//   writable 32 MiB at once, and the program's own heap grows in 32 MiB
//   steps. Setting the pad turns glibc's dynamic mmap threshold off (it
//   would rise to the size of a freed mapped block, so that such a block
//   asked for again comes from the heap); a fixed 4 MiB stands for it.
//   Blocks from 128 KiB to 4 MiB then come from the heap, not from mappings
//   of their own (arrays of 512 KiB or more map their own pages anyway:
//   runtime/aligned.h). It changes the whole process's malloc, so it is the
//   program's choice, not the library's: the `nabla` command makes it
//   (cli/main.cpp); a program embedding nabla may (nabla.h). Where
//   transparent huge pages are off ("never"), it does nothing.
// - advise_compile_heap(), on each thread before it compiles (jit.cpp's
//   compile and compile_support call it; once a thread): if that call was
//   made, the thread's arena is advised MADV_HUGEPAGE, and its first 2 MiB,
//   already touched in small pages, is collapsed into a huge one
//   (MADV_COLLAPSE, Linux 6.1; older kernels refuse it, and nothing changes).
//
// Only a heap with the shape of a glibc arena is advised (64 MiB aligned,
// readable and writable from its start, the rest reserved); the main heap
// and any other allocator's memory are left alone.
// Cold compiles (`nabla --no-cache bench MODEL --batch 1 --threads 1`,
// medians of 6-8 alternated runs, bench/RESULTS.md "A tenth session"): the
// MLP 784-256-256-10 108.4 -> 97.9 ms (page faults 3,113 -> 1,333, peak
// memory 62 -> 65 MB), the 2-8-1 model 78.6 -> 57.2, the 20 x 32 sigmoid
// chain 216.5 -> 194.9; the same as glibc's own GLIBC_TUNABLES=glibc.malloc.
// hugetlb=1:glibc.malloc.top_pad=33554432, which a process cannot set for
// itself once started. A larger pad (64 MiB) or a fixed mmap threshold
// took fewer faults still on the largest models but no less time.
#pragma once

namespace nabla::codegen {

// True when it took effect: false where transparent huge pages are off or
// mallopt refuses the pad (a sanitizer build).
bool use_huge_pages_for_compiling();

void advise_compile_heap();

}  // namespace nabla::codegen
