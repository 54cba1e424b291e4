/*
 * Guest-side workload of the qcow2-sigterm probe.
 *
 * Why a C program and not dd: one `dd oflag=direct` per chunk keeps a write
 * outstanding only ~3-4 % of the time, so most SIGTERMs land on an idle disk.
 * Several threads each doing O_DIRECT pwrite() keep the virtio queue busy, so
 * the host's SIGTERM almost always finds qcow2 requests in flight.
 *
 * Every 512-byte block identifies itself (magic, trial, chunk, byte offset)
 * and the rest of the block is a filler derived from the same numbers, so the
 * host can tell a missing block (zeros) from a misplaced or torn one.
 *
 * Protocol on stdout (the serial console), one short line per write(2):
 *   "BQ-GO <chunks>"        before the first write
 *   "BQ-D <chunk>"          after pwrite() of that chunk returned in full
 *   "BQ-E <chunk> <errno>"  on a failed or short write (the thread stops)
 *   "BQ-ALLDONE"            when every chunk was written
 *
 * Usage: writer DEVICE TRIAL THREADS CHUNK_BYTES CHUNKS STRIDE
 *   chunk i goes to byte offset ((i * STRIDE) % CHUNKS) * CHUNK_BYTES; an
 *   odd STRIDE that is coprime with CHUNKS spreads consecutive allocations.
 *
 * Must match probes/qcow2_sigterm/verify.py (block_bytes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK 512
#define MAGIC "BQPROBE1"

static const char *device;
static uint32_t trial;
static uint64_t chunk_bytes, chunks, stride;
static uint64_t next_chunk;
static int fd;

static void say(const char *line)
{
    size_t len = strlen(line);
    /* one write(2) per line, so lines of different threads do not mix */
    while (write(1, line, len) < 0 && errno == EINTR)
        ;
}

/* Must match verify.block_bytes() on the host. */
static void fill_block(unsigned char *b, uint32_t chunk, uint64_t offset)
{
    uint64_t word = ((uint64_t)trial << 40) ^ (offset / BLOCK) ^ 0x5a5a5a5a00000000ull;
    memcpy(b, MAGIC, 8);
    memcpy(b + 8, &trial, 4);
    memcpy(b + 12, &chunk, 4);
    memcpy(b + 16, &offset, 8);
    memcpy(b + 24, &word, 8);
    for (int i = 32; i < BLOCK; i += 8)
        memcpy(b + i, &word, 8);
}

static void *worker(void *arg)
{
    unsigned char *buf;
    char line[64];
    (void)arg;
    if (posix_memalign((void **)&buf, 4096, chunk_bytes) != 0) {
        say("BQ-E -1 12\n");
        return NULL;
    }
    for (;;) {
        uint64_t i = __atomic_fetch_add(&next_chunk, 1, __ATOMIC_SEQ_CST);
        if (i >= chunks)
            break;
        uint64_t slot = (i * stride) % chunks;
        uint64_t base = slot * chunk_bytes;
        for (uint64_t o = 0; o < chunk_bytes; o += BLOCK)
            fill_block(buf + o, (uint32_t)slot, base + o);
        ssize_t n = pwrite(fd, buf, chunk_bytes, (off_t)base);
        if (n != (ssize_t)chunk_bytes) {
            snprintf(line, sizeof line, "BQ-E %llu %d\n", (unsigned long long)slot,
                     n < 0 ? errno : 0);
            say(line);
            break;
        }
        snprintf(line, sizeof line, "BQ-D %llu\n", (unsigned long long)slot);
        say(line);
    }
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        say("BQ-USAGE writer DEVICE TRIAL THREADS CHUNK_BYTES CHUNKS STRIDE\n");
        return 2;
    }
    device = argv[1];
    trial = (uint32_t)strtoul(argv[2], NULL, 0);
    int threads = atoi(argv[3]);
    chunk_bytes = strtoull(argv[4], NULL, 0);
    chunks = strtoull(argv[5], NULL, 0);
    stride = strtoull(argv[6], NULL, 0);
    if (threads < 1 || threads > 256 || chunk_bytes == 0 || chunk_bytes % 4096 || chunks == 0
        || stride == 0) {
        say("BQ-USAGE bad arguments\n");
        return 2;
    }
    fd = open(device, O_WRONLY | O_DIRECT);
    if (fd < 0) {
        char line[64];
        snprintf(line, sizeof line, "BQ-OPENFAIL %d\n", errno);
        say(line);
        return 1;
    }
    pthread_t tid[256];
    char line[64];
    snprintf(line, sizeof line, "BQ-GO %llu\n", (unsigned long long)chunks);
    say(line);
    for (int t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, worker, NULL);
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    say(__atomic_load_n(&next_chunk, __ATOMIC_SEQ_CST) >= chunks ? "BQ-ALLDONE\n" : "BQ-STOPPED\n");
    return 0;
}
