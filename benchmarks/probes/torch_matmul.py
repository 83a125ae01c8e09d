import torch, time
for n,N,K in [(512,2048,2048),(512,16384,2048),(512,2048,8192),(4096,2048,2048),(256,128256,2048),(16,16384,2048),(16,2048,8192)]:
    a=torch.randn(n,K,device='cuda',dtype=torch.float16); b=torch.randn(N,K,device='cuda',dtype=torch.float16)
    for _ in range(3): c=a@b.T
    torch.cuda.synchronize(); r=20; t=time.perf_counter()
    for _ in range(r): c=a@b.T
    torch.cuda.synchronize(); ms=(time.perf_counter()-t)/r*1e3
    print(f"torch {n}x{N}x{K}: {ms:.3f} ms {2*n*N*K/ms/1e9:.1f} TFLOP/s")
