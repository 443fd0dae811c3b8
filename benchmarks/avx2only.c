/* LD_PRELOAD shim: makes this process see an AVX2-only CPU (no AVX-512, AVX-VNNI, AMX, AVX10).
 * Uses Linux CPUID faulting (arch_prctl ARCH_SET_CPUID, needs the cpuid_fault flag): every
 * CPUID traps to SIGSEGV, the handler runs the real CPUID with faulting briefly off, clears
 * the masked feature bits and steps over the instruction. Kernels then choose their AVX2 paths
 * on real silicon. Set AVX2ONLY_DEBUG=1 to count trapped CPUIDs. Used by benchmarks/cpu_mask.py. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <cpuid.h>
#define ARCH_SET_CPUID 0x1012
static struct sigaction prev;
static volatile long trapped;
static void set_cpuid(int on) { syscall(SYS_arch_prctl, ARCH_SET_CPUID, on); }
static void handler(int sig, siginfo_t *si, void *ctx) {
  ucontext_t *uc = ctx;
  greg_t *g = uc->uc_mcontext.gregs;
  const unsigned char *ip = (const unsigned char *)g[REG_RIP];
  if (ip[0] == 0x0F && ip[1] == 0xA2) {
    unsigned leaf = (unsigned)g[REG_RAX], sub = (unsigned)g[REG_RCX];
    unsigned a, b, c, d;
    set_cpuid(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
      b &= ~((1u<<16)|(1u<<17)|(1u<<21)|(1u<<26)|(1u<<27)|(1u<<28)|(1u<<30)|(1u<<31));
      c &= ~((1u<<1)|(1u<<6)|(1u<<11)|(1u<<12)|(1u<<14));
      d &= ~((1u<<2)|(1u<<3)|(1u<<8)|(1u<<22)|(1u<<23)|(1u<<24)|(1u<<25));
    } else if (leaf == 7 && sub == 1) {
      a &= ~((1u<<4)|(1u<<5)|(1u<<21)|(1u<<23));  /* AVX-VNNI, AVX512_BF16, AMX-FP16, AVX-IFMA */
      d &= ~((1u<<4)|(1u<<5)|(1u<<19));           /* AVX-VNNI-INT8, AVX-NE-CONVERT, AVX10 */
    } else if (leaf == 0xD && sub == 0) {
      a &= ~((1u<<5)|(1u<<6)|(1u<<7)|(1u<<17)|(1u<<18));  /* opmask/ZMM and AMX tile state */
    } else if (leaf == 0x24 || leaf == 0x1D || leaf == 0x1E) {
      a = b = c = d = 0;                          /* AVX10 and AMX tile leaves */
    }
    g[REG_RAX] = a; g[REG_RBX] = b; g[REG_RCX] = c; g[REG_RDX] = d;
    g[REG_RIP] += 2;
    trapped++;
    return;
  }
  /* not ours: hand to the previous handler or die as SIGSEGV would */
  if (prev.sa_flags & SA_SIGINFO && prev.sa_sigaction) { prev.sa_sigaction(sig, si, ctx); return; }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler) { prev.sa_handler(sig); return; }
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
}
static void report(void) { if (getenv("AVX2ONLY_DEBUG")) fprintf(stderr, "avx2only: %ld CPUIDs masked\n", trapped); }
__attribute__((constructor)) static void init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, &prev);
  if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) { perror("avx2only: ARCH_SET_CPUID"); _exit(97); }
  atexit(report);
}
