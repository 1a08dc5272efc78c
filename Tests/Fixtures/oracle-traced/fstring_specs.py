with model.trace("Hello world"):
    v = model.transformer.h[1].output[0][0, -1, 0]
    print(f"{v.item():.3f}|{v.item():+.2e}|{v.item():>12.5f}|{v.item():>10.4f}")
    n = model.lm_head.output.shape[-1]
    print(f"{n:>6}|{n:<6}|{n:^8}|{n:,}|{n:08d}")
    i = model.lm_head.output[0, -1].argmax().item()
    print("id", i, "doubled", i * 2, "half", i / 2, "sum", i + 0.5)
    print(f"{v.item() * 3:.4f} {v.item() + 1:.4f} {-v.item():.4f} {abs(v.item()):.4f}", round(v.item(), 3))
