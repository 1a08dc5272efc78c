// Cold versus hot ZeroMQ round trips (BENCHMARKS.md, cluster section): plain libzmq REQ/REP,
// 3 KB, two processes; mode 0 back to back, mode 1 after 5 ms of sleep, mode 2 after 5 ms of
// busy work. A pipeline hop always follows milliseconds of idling, like modes 1 and 2.
// gcc -O2 scripts/zmq_pingpong_idle.c -o /tmp/zpc -lzmq && for m in 0 1 2; do /tmp/zpc $m ipc:///tmp/zpc; /tmp/zpc $m tcp://127.0.0.1:5799; done
#include <zmq.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int mode=atoi(argv[1]); const char* ep=argv[2]; int N=400;
  char buf[4000]; void*ctx;
  if(fork()==0){ ctx=zmq_ctx_new(); void*s=zmq_socket(ctx,ZMQ_REP); zmq_bind(s,ep); for(int i=0;i<N;i++){int n=zmq_recv(s,buf,4000,0); zmq_send(s,buf,n,0);} zmq_close(s); zmq_ctx_term(ctx); return 0;}
  ctx=zmq_ctx_new(); void*c=zmq_socket(ctx,ZMQ_REQ); zmq_connect(c,ep);
  double ts[N];
  for(int i=0;i<N;i++){
    if(mode==1) usleep(5000);
    if(mode==2){ double t0=now(); while(now()-t0<0.005){} }
    double t=now(); zmq_send(c,buf,3072,0); zmq_recv(c,buf,4000,0); ts[i]=now()-t;}
  qsort(ts,N,sizeof(double),cmp); printf("mode %d %s median rtt %.1f us p90 %.1f\n", mode, ep, ts[N/2]*1e6, ts[N*9/10]*1e6);
}
