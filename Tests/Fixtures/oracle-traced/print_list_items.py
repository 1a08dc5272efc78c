with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        a = model.transformer.h[0].output[0][0, -1, 0]
        b = model.transformer.h[3].output[0][0, -1, 0]
        print([round(a.item(), 2), round(b.item(), 2)], {"step": step})
        print(a.item() > b.item(), max(a.item(), b.item()) == a.item())
