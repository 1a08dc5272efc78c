// Baseline for BENCHMARKS.md: plain libzmq REQ/REP round trip, 3 KB, ipc, two processes.
// gcc -O2 scripts/zmq_pingpong.c -o /tmp/zp -lzmq && /tmp/zp
#include <zmq.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  char buf[4000]; void*ctx;
  if(fork()==0){ ctx=zmq_ctx_new(); void*s=zmq_socket(ctx,ZMQ_REP); zmq_bind(s,"ipc:///tmp/zp"); for(int i=0;i<5000;i++){int n=zmq_recv(s,buf,4000,0); zmq_send(s,buf,n,0);} return 0;}
  ctx=zmq_ctx_new(); void*c=zmq_socket(ctx,ZMQ_REQ); zmq_connect(c,"ipc:///tmp/zp");
  double ts[5000];
  for(int i=0;i<5000;i++){double t=now(); zmq_send(c,buf,3072,0); zmq_recv(c,buf,4000,0); ts[i]=now()-t;}
  int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
  qsort(ts,5000,sizeof(double),cmp); printf("C ipc 3KB median rtt %.1f us\n", ts[2500]*1e6);
}
